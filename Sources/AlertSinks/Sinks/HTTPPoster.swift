import CCurl

/// POSTs a body with libcurl's easy API and classifies the answer for the spool:
/// 2xx delivered, 408/429/5xx and transport errors retryable, other statuses permanent.
///
/// A fresh easy handle per request keeps it free of shared state between sinks;
/// alert volume is far too low for connection reuse to matter. The transfer runs
/// under a multi handle only so that a shutdown can wake and abort it.
public struct HTTPPoster: Sendable {
    public var timeoutSeconds: Double
    public var connectTimeoutSeconds: Double

    public init(timeoutSeconds: Double = 10, connectTimeoutSeconds: Double = 5) {
        self.timeoutSeconds = timeoutSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
        Self.initialiseOnce
    }

    // curl_global_init is not thread-safe; a static let runs it exactly once.
    private static let initialiseOnce: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// Returns the 2xx status, or throws a classified `DeliveryError` naming `sink`.
    /// A cancelled `cancellation` aborts the request at once (retryable: the alert stays queued).
    @discardableResult
    public func post(sink: String, url: String, headers: [(String, String)], body: [UInt8],
                     cancellation: DeliveryCancellation = DeliveryCancellation()) throws(DeliveryError) -> Int {
        guard let handle = curl_easy_init() else {
            throw DeliveryError(.retryable, sink: sink, reason: "curl_easy_init failed")
        }
        defer { curl_easy_cleanup(handle) }
        // The multi interface only to wait: its poll can be woken, so a shutdown need
        // not wait for a hanging receiver's timeout.
        guard let multi = curl_multi_init() else {
            throw DeliveryError(.retryable, sink: sink, reason: "curl_multi_init failed")
        }
        defer { curl_multi_cleanup(multi) }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (name, value) in headers + [("Content-Type", "application/json"), ("Expect", "")] {
            // Control characters dropped: an alert id with CR LF must not inject headers.
            list = curl_slist_append(list, "\(name): \(String(value.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))")
        }
        defer { curl_slist_free_all(list) }

        let response = ResponseBox()
        let unmanaged = Unmanaged.passRetained(response)
        defer { unmanaged.release() }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        let outcome: Transfer = body.withUnsafeBytes { bodyBytes in
            errorBuffer.withUnsafeMutableBufferPointer { errorBytes in
                _ = ipsight_curl_set_string(handle, CURLOPT_URL, url)
                // Only HTTP(S): a mistyped or hostile URL must not reach file:// or gopher://.
                _ = ipsight_curl_set_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
                _ = ipsight_curl_set_long(handle, CURLOPT_POST, 1)
                _ = ipsight_curl_set_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bodyBytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
                _ = ipsight_curl_set_long(handle, CURLOPT_POSTFIELDSIZE, bodyBytes.count)
                _ = ipsight_curl_set_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
                _ = ipsight_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(timeoutSeconds * 1000))
                _ = ipsight_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeoutSeconds * 1000))
                // Signals for timeouts are unsafe on a non-main thread.
                _ = ipsight_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
                _ = ipsight_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0)
                _ = ipsight_curl_set_string(handle, CURLOPT_USERAGENT, "ipsight-alerts/1")
                _ = ipsight_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBytes.baseAddress!))
                _ = ipsight_curl_set_pointer(handle, CURLOPT_WRITEFUNCTION, unsafeBitCast(collectResponse, to: UnsafeMutableRawPointer.self))
                _ = ipsight_curl_set_pointer(handle, CURLOPT_WRITEDATA, unmanaged.toOpaque())
                _ = ipsight_curl_set_pointer(handle, CURLOPT_HEADERFUNCTION, unsafeBitCast(collectHeader, to: UnsafeMutableRawPointer.self))
                _ = ipsight_curl_set_pointer(handle, CURLOPT_HEADERDATA, unmanaged.toOpaque())
                return Self.perform(handle, in: multi, cancellation: cancellation)
            }
        }
        let code: CURLcode
        switch outcome {
        case .cancelled:
            throw DeliveryError(.retryable, sink: sink, reason: "POST \(Self.redacted(url)): cancelled (shutting down)")
        case .failed(let detail):
            throw DeliveryError(.retryable, sink: sink, reason: "POST \(Self.redacted(url)): \(detail)")
        case .done(let result):
            code = result
        }
        guard code == CURLE_OK else {
            let detail = errorBuffer[0] != 0
                ? String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : String(cString: curl_easy_strerror(code))
            throw DeliveryError(.retryable, sink: sink, reason: "POST \(Self.redacted(url)): \(detail)")
        }
        var status = 0
        _ = ipsight_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        switch status {
        case 200..<300:
            return status
        case 408, 429, 500..<600:
            throw DeliveryError(.retryable, sink: sink, reason: "POST \(Self.redacted(url)): HTTP \(status) \(response.text)",
                                retryAfter: response.retryAfter)
        default:
            throw DeliveryError(.permanent, sink: sink, reason: "POST \(Self.redacted(url)): HTTP \(status) \(response.text)")
        }
    }

    private enum Transfer {
        case done(CURLcode)
        case failed(String)
        case cancelled
    }

    /// Runs one transfer to its end (its own timeouts apply) or until `cancellation`.
    private static func perform(_ handle: UnsafeMutableRawPointer, in multi: UnsafeMutableRawPointer,
                                cancellation: DeliveryCancellation) -> Transfer {
        let added = curl_multi_add_handle(multi, handle)
        guard added == CURLM_OK else { return .failed(String(cString: curl_multi_strerror(added))) }
        defer { curl_multi_remove_handle(multi, handle) }
        let handleBits = UInt(bitPattern: multi)
        let token = cancellation.register {
            // The pointer as bits: a closure kept by the cancellation must be Sendable.
            _ = curl_multi_wakeup(UnsafeMutableRawPointer(bitPattern: handleBits))
        }
        defer { cancellation.unregister(token) }
        while true {
            if cancellation.isCancelled { return .cancelled }
            var running: Int32 = 0
            let step = curl_multi_perform(multi, &running)
            guard step == CURLM_OK else { return .failed(String(cString: curl_multi_strerror(step))) }
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                if message.pointee.msg == CURLMSG_DONE { return .done(ipsight_curl_msg_result(message)) }
            }
            if running == 0 { return .failed("the transfer ended without a result") }
            // Up to a second per wait; curl's own timeouts end the transfer, a cancel wakes it.
            let waited = curl_multi_poll(multi, nil, 0, 1000, nil)
            guard waited == CURLM_OK else { return .failed(String(cString: curl_multi_strerror(waited))) }
        }
    }

    /// Scheme and host only: Slack and Teams webhook URLs carry their secret in the path.
    static func redacted(_ url: String) -> String {
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return "(url)" }
        let host = parts[1].prefix { $0 != "/" && $0 != "?" }
        return "\(parts[0])://\(host)" + (parts[1].count > host.count ? "/…" : "")
    }

    /// Seconds from a `Retry-After: <seconds>` header line; the HTTP-date form is
    /// ignored (rare in webhook APIs) and the backoff applies instead.
    static func retryAfter(headerLine line: String) -> Double? {
        let parts = line.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "retry-after" else { return nil }
        let value = parts[1].trimmingPrefix(while: { $0 == " " || $0 == "\t" }).prefix { !$0.isWhitespace }
        guard let seconds = Double(value), seconds >= 0, seconds.isFinite else { return nil }
        return seconds
    }
}

/// The first bytes of a response body, for error messages, and its `Retry-After`.
private final class ResponseBox {
    var bytes: [UInt8] = []
    var retryAfter: Double?
    var text: String {
        let printable = String(decoding: bytes, as: UTF8.self).filter { !$0.isNewline }
        return printable.isEmpty ? "" : "(\(printable))"
    }
}

private let collectResponse: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, context in
    let total = size * count
    if let data, let context {
        let box = Unmanaged<ResponseBox>.fromOpaque(context).takeUnretainedValue()
        let room = max(0, 300 - box.bytes.count)
        if room > 0 {
            data.withMemoryRebound(to: UInt8.self, capacity: total) { box.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: min(room, total))) }
        }
    }
    return total
}

private let collectHeader: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, context in
    let total = size * count
    if let data, let context {
        let line = data.withMemoryRebound(to: UInt8.self, capacity: total) { String(decoding: UnsafeBufferPointer(start: $0, count: total), as: UTF8.self) }
        if let seconds = HTTPPoster.retryAfter(headerLine: line) {
            Unmanaged<ResponseBox>.fromOpaque(context).takeUnretainedValue().retryAfter = seconds
        }
    }
    return total
}
