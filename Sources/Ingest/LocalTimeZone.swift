import Foundation

/// Converts local civil times (RFC 3164 stamps carry no zone) to UTC, caching the zone offset per hour.
package struct LocalTimeZone: Sendable {
    private let zone: TimeZone
    private var cacheKey: Int64 = .min
    private var cacheOffset: Int64 = 0

    package init(_ zone: TimeZone = .current) { self.zone = zone }

    package mutating func utcMicros(localMicros: Int64) -> Int64 {
        let hourKey = localMicros / 3_600_000_000
        if hourKey != cacheKey {
            let guess = Date(timeIntervalSince1970: Double(localMicros) / 1_000_000)
            var offset = zone.secondsFromGMT(for: guess)
            // Resolve the offset in force at the UTC instant, not at the local reading.
            offset = zone.secondsFromGMT(for: guess.addingTimeInterval(-Double(offset)))
            cacheKey = hourKey
            cacheOffset = Int64(offset) * 1_000_000
        }
        return localMicros - cacheOffset
    }
}
