import CoffreAPI
import CoffreModel
import Foundation
import Testing

/// Where a takedown binds, as operators write it and as records carry it.
@Suite struct TakedownScopeTests {
    @Test func scopesParseAndBindTheirCountryOnly() throws {
        #expect(try TakedownScope(parsing: "global") == .global)
        let france = try TakedownScope(parsing: "country:fr")
        #expect(france.country?.code == "FR" && france.description == "country:FR")
        #expect(france.binds("FR") && france.binds("fr") && !france.binds("DE"))
        #expect(TakedownScope.global.binds("NZ"))
        for bad in ["", "Global", "country:", "country:FRA", "country:F1", "country FR", "FR"] {
            #expect(throws: ModelError.self, "\(bad)") { try TakedownScope(parsing: bad) }
        }
    }

    @Test func aNoticeTravelsAsJSONAndSaysWhereAndWhy() throws {
        let notice = TakedownNotice(
            id: "1764800000000-abcdefgh", target: "file", reason: .copyright, notice: "DMCA-9", scope: try TakedownScope(parsing: "country:DE"),
            createdAt: 1)
        let json = String(decoding: try JSONEncoder().encode(notice), as: UTF8.self)
        #expect(json.contains(#""scope":"country:DE""#) && json.contains(#""reason":"copyright""#))
        #expect(try JSONDecoder().decode(TakedownNotice.self, from: Data(json.utf8)) == notice)
        #expect(notice.code == .fileTakenDown && notice.message.contains("in DE") && notice.message.contains("DMCA-9"))
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(TakedownNotice.self, from: Data(json.replacingOccurrences(of: "country:DE", with: "moon").utf8))
        }
        // An error body with a notice, and one without (no `takedown` key at all).
        let refused = String(decoding: try JSONEncoder().encode(APIErrorBody(code: notice.code, message: notice.message, takedown: notice)), as: UTF8.self)
        #expect(refused.contains(#""takedown":{"#))
        let plain = String(decoding: try JSONEncoder().encode(APIErrorBody(code: .notFound, message: "no")), as: UTF8.self)
        #expect(!plain.contains("takedown"))
        #expect(APIErrorBody.status(for: .linkTakenDown) == 451 && APIErrorBody.status(for: .accountSuspended) == 403)
    }
}
