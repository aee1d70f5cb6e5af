/// Calendar arithmetic on plain integers: log timestamps are parsed millions of times a second,
/// so this avoids Foundation's calendar on the hot path.
package enum CivilTime {
    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
    @inline(__always)
    package static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// Microseconds since the epoch for a UTC civil time.
    @inline(__always)
    package static func micros(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, micro: Int = 0)
        -> Int64
    {
        let days = daysFromCivil(year: year, month: month, day: day)
        let secs = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second)
        return secs * 1_000_000 + Int64(micro)
    }

    /// (year, month, day, hour, minute, second) of a UTC instant.
    package static func civil(micros: Int64) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, micro: Int) {
        var secs = micros / 1_000_000
        var micro = Int(micros % 1_000_000)
        if micro < 0 {
            micro += 1_000_000
            secs -= 1
        }
        var days = Int(secs / 86400)
        var rem = Int(secs % 86400)
        if rem < 0 {
            rem += 86400
            days -= 1
        }
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60, micro)
    }

    /// RFC 3339 UTC text with millisecond precision, as findings carry it.
    package static func rfc3339(micros: Int64) -> String {
        let c = civil(micros: micros)
        func pad(_ v: Int, _ w: Int) -> String {
            let s = String(v)
            return s.count >= w ? s : String(repeating: "0", count: w - s.count) + s
        }
        return
            "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2)):\(pad(c.minute, 2)):\(pad(c.second, 2)).\(pad(c.micro / 1000, 3))Z"
    }
}
