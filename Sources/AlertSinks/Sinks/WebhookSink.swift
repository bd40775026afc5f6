import Crypto
import Foundation
import IPSightCore

/// Generic JSON webhook signed per Standard Webhooks: `webhook-id` is the alert id (so
/// receivers de-duplicate retries), the signature is `v1,<base64 HMAC-SHA256 of
/// "id.timestamp.body">`.
public struct WebhookSink: AlertSink {
    public let name: String
    public let url: String
    let secret: Secret?
    let poster: HTTPPoster

    /// `secret` nil sends unsigned requests (for receivers that authenticate by network).
    public init(name: String = "webhook", url: String, secret: Secret?, poster: HTTPPoster = HTTPPoster()) {
        self.name = name
        self.url = url
        self.secret = secret
        self.poster = poster
    }

    /// `{"type": "ipsight.alert", "timestamp": ..., "data": {alert}}`, the envelope Standard Webhooks suggests.
    func body(for alert: Alert) -> [UInt8] {
        var out: [UInt8] = []
        JSONWriter.append(.object([
            ("type", .string("ipsight.\(alert.decision)")),
            ("timestamp", .string(Clock.rfc3339Milliseconds(alert.time))),
            ("data", AlertJSON.encode(alert)),
        ]), to: &out)
        return out
    }

    static func signature(key: [UInt8], id: String, timestamp: Int, body: [UInt8]) -> String {
        let message = Array("\(id).\(timestamp).".utf8) + body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }

    public func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError) {
        let payload = body(for: alert)
        // Signed at send time, not queue time: receivers reject stale timestamps.
        let timestamp = Int(Clock.wall)
        var headers = [("webhook-id", alert.id), ("webhook-timestamp", String(timestamp))]
        if let secret {
            headers.append(("webhook-signature", Self.signature(key: secret.signingKey, id: alert.id, timestamp: timestamp, body: payload)))
        }
        try poster.post(sink: name, url: url, headers: headers, body: payload, cancellation: cancellation)
    }
}
