import ClusterTLS
import Foundation
import Testing

/// What identity a certificate names: its `coffre://ROLE/ID` URI SAN, or (for certificates Helm
/// makes, which cannot carry URI SANs) the same text as its common name.
@Suite struct IdentityTests {
    static func der(_ issued: CertificateAuthority.Issued) -> [UInt8] {
        let body = issued.certificatePEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        return Array(Data(base64Encoded: body)!)
    }

    @Test func theURISANNamesTheIdentity() throws {
        let ca = try CertificateAuthority.create()
        let issued = try ca.issue(commonName: "coffre node fr-1", hosts: ["localhost"], identity: .init(role: .node, id: "fr-1"))
        #expect(ClusterIdentity.of(certificateDER: Self.der(issued)) == .init(role: .node, id: "fr-1"))
    }

    @Test func aCommonNameOfTheSameFormNamesItWhenNoSANDoes() throws {
        let ca = try CertificateAuthority.create()
        let issued = try ca.issue(commonName: "coffre://coordinator/coffre-coordinator-fr-0", hosts: ["localhost"])
        #expect(ClusterIdentity.of(certificateDER: Self.der(issued)) == .init(role: .coordinator, id: "coffre-coordinator-fr-0"))
    }

    @Test func aCommonNameAndASANThatDisagreeNameNothing() throws {
        let ca = try CertificateAuthority.create()
        let issued = try ca.issue(commonName: "coffre://coordinator/c-1", hosts: ["localhost"], identity: .init(role: .node, id: "fr-1"))
        #expect(ClusterIdentity.of(certificateDER: Self.der(issued)) == nil)
        let agreeing = try ca.issue(commonName: "coffre://node/fr-1", hosts: ["localhost"], identity: .init(role: .node, id: "fr-1"))
        #expect(ClusterIdentity.of(certificateDER: Self.der(agreeing)) == .init(role: .node, id: "fr-1"))
    }

    @Test func otherCommonNamesNameNothing() throws {
        let ca = try CertificateAuthority.create()
        for name in ["coffre node fr-1", "coffre://admin/x", "coffre://node/", "https://node/fr-1"] {
            let issued = try ca.issue(commonName: name, hosts: ["localhost"])
            #expect(ClusterIdentity.of(certificateDER: Self.der(issued)) == nil, "\(name)")
        }
    }
}
