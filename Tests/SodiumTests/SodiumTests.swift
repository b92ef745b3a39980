import CoffreModel
import Sodium
import Testing

@Suite struct Argon2idTests {
    let salt = [UInt8](repeating: 3, count: 16)

    @Test func isDeterministicAndSaltSensitive() throws {
        let a = try Argon2id.derive(password: Array("correct horse".utf8), salt: salt, parameters: .minimum)
        let b = try Argon2id.derive(password: Array("correct horse".utf8), salt: salt, parameters: .minimum)
        let c = try Argon2id.derive(password: Array("correct horse".utf8), salt: [UInt8](repeating: 4, count: 16), parameters: .minimum)
        let d = try Argon2id.derive(password: Array("correct horsf".utf8), salt: salt, parameters: .minimum)
        #expect(a.count == 32)
        #expect(a == b)
        #expect(a != c)
        #expect(a != d)
    }

    @Test func acceptsAnEmptyPassword() throws {
        let key = try Argon2id.derive(password: [], salt: salt, parameters: .minimum)
        #expect(key.count == 32)
    }

    @Test(arguments: [
        Argon2id.Parameters(operations: 1, memoryBytes: 64 << 20),
        Argon2id.Parameters(operations: 2, memoryBytes: 32 << 20),
    ])
    func refusesParametersUnderTheFloor(parameters: Argon2id.Parameters) {
        #expect { try Argon2id.derive(password: [1], salt: salt, parameters: parameters) } throws: { error in
            (error as? SodiumError)?.code == .weakParameters
        }
    }

    @Test func refusesParametersOverTheCeiling() {
        let huge = Argon2id.Parameters(operations: 3, memoryBytes: 64 << 30)
        #expect { try Argon2id.derive(password: [1], salt: salt, parameters: huge) } throws: { error in
            (error as? SodiumError)?.code == .limitExceeded
        }
    }

    @Test func refusesAShortSalt() {
        #expect(throws: SodiumError.self) { try Argon2id.derive(password: [1], salt: [1, 2], parameters: .minimum) }
    }
}
