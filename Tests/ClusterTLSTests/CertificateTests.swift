import ClusterTLS
import Foundation
import Testing
import TestSupport

@Suite struct CertificateTests {
    @Test func authorityIssuesCertificatesThatOpenSSLVerifies() async throws {
        try await withTemporaryDirectory { folder in
            let authority = try CertificateAuthority.create()
            try authority.write(to: folder)
            let reloaded = try CertificateAuthority.load(from: folder)
            #expect(reloaded.certificatePEM == authority.certificatePEM)
            let node = try reloaded.issue(commonName: "node fr-1", hosts: ["127.0.0.1", "localhost", "::1"])
            try node.write(to: folder, name: "fr-1")
            // An independent verifier: the openssl command line.
            let verify = try runProcess("openssl", ["verify", "-CAfile", folder + "/ca.pem", folder + "/fr-1.pem"])
            #expect(verify.status == 0, "\(verify.output)")
            let text = try runProcess("openssl", ["x509", "-in", folder + "/fr-1.pem", "-noout", "-text"]).output
            #expect(text.contains("IP Address:127.0.0.1"))
            #expect(text.contains("DNS:localhost"))
            #expect(text.contains("TLS Web Server Authentication") && text.contains("TLS Web Client Authentication"))
            let attributes = try FileManager.default.attributesOfItem(atPath: folder + "/fr-1-key.pem")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            // A certificate from another authority does not verify against this one.
            let stranger = try CertificateAuthority.create(name: "Someone else")
            try stranger.issue(commonName: "intruder", hosts: ["127.0.0.1"]).write(to: folder, name: "intruder")
            #expect(try runProcess("openssl", ["verify", "-CAfile", folder + "/ca.pem", folder + "/intruder.pem"]).status != 0)
            // The files load as TLS configurations.
            _ = try TLSSetup.server(certificate: folder + "/fr-1.pem", key: folder + "/fr-1-key.pem", clientCA: folder + "/ca.pem")
            _ = try TLSSetup.client(ca: folder + "/ca.pem", certificate: folder + "/fr-1.pem", key: folder + "/fr-1-key.pem")
        }
    }

    @Test func refusesBadHostsAndMissingFiles() async throws {
        let authority = try CertificateAuthority.create()
        #expect(throws: ClusterTLSError.self) { try authority.issue(commonName: "x", hosts: []) }
        #expect(throws: ClusterTLSError.self) { try authority.issue(commonName: "x", hosts: ["bad host!"]) }
        #expect(throws: ClusterTLSError.self) { try CertificateAuthority.load(from: "/nonexistent") }
        #expect(throws: ClusterTLSError.self) { try TLSSetup.client(ca: "/nonexistent/ca.pem") }
    }
}
