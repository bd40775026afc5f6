import Foundation
import Testing
@testable import AlertSinks

/// Signing with swift-crypto's HMAC-SHA256, checked against the Standard Webhooks
/// reference signature; and the backoff schedule.
@Suite("signatures and backoff")
struct SigningTests {
    @Test("Standard Webhooks reference signature")
    func standardWebhooksSignature() throws {
        let key = Array(try #require(Data(base64Encoded: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")))
        let signature = WebhookSink.signature(key: key, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330,
                                              body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test("backoff ceilings double up to the cap and delays stay under them")
    func backoff() {
        let backoff = Backoff(base: 0.5, cap: 10)
        #expect((1...7).map { backoff.ceiling(attempt: $0) } == [0.5, 1, 2, 4, 8, 10, 10])
        #expect(backoff.ceiling(attempt: 10_000) == 10)
        for attempt in 1...20 {
            let d = backoff.delay(attempt: attempt)
            #expect(d >= 0 && d <= backoff.ceiling(attempt: attempt))
        }
    }
}
