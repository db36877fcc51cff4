import LDAPDirectory

/// Active Directory account state: whether an entry may log in at all, whatever
/// the password ([MS-ADTS] §2.2.16 userAccountControl, §3.1.1.4.5.17
/// msDS-User-Account-Control-Computed). Pure: the entry and the time are passed
/// in. Entries without these attributes (OpenLDAP) are never refused here.
enum LDAPAccountState {
    static let userAccountControl = "userAccountControl"
    static let computed = "msDS-User-Account-Control-Computed"
    static let accountExpires = "accountExpires"
    static let pwdLastSet = "pwdLastSet"

    /// The attributes ``refusal(_:now:)`` reads.
    static let attributes = [userAccountControl, computed, accountExpires, pwdLastSet]

    static let accountDisable: UInt64 = 0x2
    static let lockout: UInt64 = 0x10
    static let passwordExpired: UInt64 = 0x80_0000
    /// FILETIME "never" values of accountExpires.
    static let never: Set<UInt64> = [0, 0x7FFF_FFFF_FFFF_FFFF]

    /// Why `entry` must not log in at `now` (Unix seconds), or `nil`.
    static func refusal(_ entry: LDAPEntry, now: Double) -> String? {
        let control = number(entry, userAccountControl) ?? 0
        let computedFlags = number(entry, computed) ?? 0
        if control & accountDisable != 0 { return "account disabled" }
        if computedFlags & lockout != 0 { return "account locked" }
        if let expires = number(entry, accountExpires), !never.contains(expires), expires <= filetime(now) {
            return "account expired"
        }
        if number(entry, pwdLastSet) == 0 { return "password must be changed" }
        if computedFlags & passwordExpired != 0 { return "password expired" }
        return nil
    }

    /// Unix seconds as a Windows FILETIME (100 ns intervals since 1601-01-01).
    static func filetime(_ unixSeconds: Double) -> UInt64 {
        UInt64(max(0, (unixSeconds + 11_644_473_600) * 10_000_000))
    }

    private static func number(_ entry: LDAPEntry, _ attribute: String) -> UInt64? {
        guard let text = entry.values(attribute).first else { return nil }
        if let value = UInt64(text) { return value }
        return Int64(text).map { UInt64(bitPattern: $0) }  // AD writes some as signed
    }
}
