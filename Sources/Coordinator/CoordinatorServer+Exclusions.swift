import CoffreAPI
import CoffreModel
import Foundation
import HTTPService
import Hummingbird
import Placement

/// Per-account excluded countries (Docs/policy.md, "Placement per account"): none of the
/// account's new objects has a shard there. Each object records them in its manifest, so
/// repair, rebalancing and re-encoding honour them without reading the account.
extension CoordinatorServer {
    /// `PUT /v1/account/excluded-countries`: sets (or with an empty list, clears) them.
    func setExcludedCountries(_ request: Request) async throws -> Response {
        _ = try await authenticate(request)
        let body = try await decodeBody(ExcludedCountries.self, request, limit: 4096)
        guard body.countries.count <= Limits.excludedCountriesMax else {
            throw APIError(.limitExceeded, "\(body.countries.count) countries exceed \(Limits.excludedCountriesMax)")
        }
        let countries = try Self.countries(body.countries).map(\.code).sorted()
        for _ in 0..<Limits.treeCommitAttemptsMax {
            let (account, revision) = try await authenticate(request)
            var changed = account
            changed.excludedCountries = countries.isEmpty ? nil : countries
            if try await metadata.commit(if: [.revision(Keyspace.account(account.id), revision)], then: [.put(Keyspace.account(account.id), encode(changed))]) != nil {
                var placeable = true
                do { try checkPlaceable(excluding: Set(try Self.countries(countries))) } catch { placeable = false }
                logger.info("excluded countries set", metadata: ["account.id": "\(account.id)", "countries": "\(countries)"])
                return try jsonResponse(ExcludedCountries(countries: countries, placeable: placeable))
            }
        }
        throw APIError(.conflict, "the account kept changing; try again")
    }

    /// Country codes, checked (ISO 3166-1 alpha-2 codes assigned, either case).
    /// (`stored`: codes read back from an account, kept as they were accepted then.)
    static func countries(_ codes: [String], stored: Bool = false) throws -> Set<Country> {
        var countries = Set<Country>()
        for code in codes {
            do throws(ModelError) { countries.insert(stored ? try Country(code) : try Country.assigned(code)) } catch {
                throw APIError(.invalidArgument, error.message)
            }
        }
        return countries
    }

    /// `insufficient_nodes` when the nodes that take shards now (up, not draining, outside
    /// `excluded` and the cluster's own excluded countries) are fewer than a segment's k + m.
    /// (With too few countries among them a segment is placed in debt, as for any account,
    /// and rebalanced once nodes join: never into an excluded country.)
    func checkPlaceable(excluding excluded: Set<Country>) throws {
        var random = SystemRandomNumberGenerator()
        do throws(PlacementError) {
            _ = try PlacementPlanner.place(
                policy: objects.policy.excluding(excluded), nodes: objects.topology.placementDescriptors(), shardBytes: 1, using: &random)
        } catch {
            throw APIError(
                .insufficientNodes,
                "the account's excluded countries (\(excluded.map(\.code).sorted().joined(separator: ", "))) leave too few nodes: \(error.message)")
        }
    }
}
