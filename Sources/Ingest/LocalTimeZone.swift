#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Converts local civil times (RFC 3164 stamps carry no zone) to UTC, caching the zone offset
/// per hour. The system zone comes from the C library (TZ, /etc/localtime), which keeps the
/// daemon clear of the ICU data a Foundation time zone would load.
package struct LocalTimeZone: Sendable {
    /// Seconds east of UTC for a fixed zone; nil for the system's zone.
    private let fixedOffset: Int?
    private var cacheKey: Int64 = .min
    private var cacheOffset: Int64 = 0

    /// The system's local zone.
    package init() {
        fixedOffset = nil
        tzset()
    }

    /// A zone at a fixed offset from UTC (tests, and logs known to be written in UTC).
    package init(fixedOffsetSeconds: Int) { fixedOffset = fixedOffsetSeconds }

    package static let utc = LocalTimeZone(fixedOffsetSeconds: 0)

    /// The zone's offset from UTC, in seconds, at a UTC instant.
    func secondsFromGMT(atUTC seconds: Int64) -> Int64 {
        if let fixedOffset { return Int64(fixedOffset) }
        var t = time_t(seconds)
        var parts = tm()
        guard localtime_r(&t, &parts) != nil else { return 0 }
        return Int64(parts.tm_gmtoff)
    }

    package mutating func utcMicros(localMicros: Int64) -> Int64 {
        let hourKey = localMicros / 3_600_000_000
        if hourKey != cacheKey {
            let guess = localMicros / 1_000_000
            var offset = secondsFromGMT(atUTC: guess)
            // Resolve the offset in force at the UTC instant, not at the local reading.
            offset = secondsFromGMT(atUTC: guess - offset)
            cacheKey = hourKey
            cacheOffset = offset * 1_000_000
        }
        return localMicros - cacheOffset
    }
}
