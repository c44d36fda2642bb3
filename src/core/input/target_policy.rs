//! Which network addresses a tenant's endpoint may be delivered to.
//!
//! A webhook service makes requests on a tenant's behalf and shows the
//! tenant the answers, so an endpoint pointed at `127.0.0.1`, a private
//! network or a cloud metadata service (`169.254.169.254`) would let a
//! tenant read what only the service's host can reach (server-side request
//! forgery). Every address that is not on the public internet is refused
//! unless the operator allows it (`HOOKRELAY_ALLOW_TARGETS`).
//!
//! IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`,
//! translated `::ffff:0:a.b.c.d` (SIIT), compatible `::a.b.c.d`, NAT64
//! `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address they
//! lead to.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// An address the policy refuses, and the range that refuses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination {addr} is refused: it is a {range} address (not in HOOKRELAY_ALLOW_TARGETS)")]
pub struct Blocked {
    pub addr: IpAddr,
    pub range: &'static str,
}

/// Checks one address: allowed when the allow-list holds it (or the IPv4
/// address it carries), otherwise refused when it falls in a non-public
/// range.
pub fn vet(addr: IpAddr, allow: &[IpNet]) -> Result<(), Blocked> {
    let carried = carried_ipv4(addr);
    let allowed = allow
        .iter()
        .any(|net| net.contains(&addr) || carried.is_some_and(|v4| net.contains(&IpAddr::V4(v4))));
    if allowed {
        return Ok(());
    }
    let range = match addr {
        IpAddr::V4(v4) => blocked_v4_range(v4),
        IpAddr::V6(v6) => blocked_v6_range(v6),
    };
    match range {
        Some(range) => Err(Blocked { addr, range }),
        None => Ok(()),
    }
}

/// Vets a URL whose host is an IP literal; a name passes here, as it is
/// vetted when it is resolved.
pub fn vet_literal(url: &Url, allow: &[IpNet]) -> Result<(), Blocked> {
    literal_address(url).map_or(Ok(()), |addr| vet(addr, allow))
}

/// The address of a URL whose host is an IP literal. The `url` crate has
/// already turned odd IPv4 spellings (`0x7f.1`, `2130706433`) of `http(s)`
/// URLs into the address they mean.
fn literal_address(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(_) => None,
    }
}

/// What an endpoint URL must satisfy beyond being a valid URL.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// Ranges delivered to even though they are not public.
    pub allow: Vec<IpNet>,
    /// Refuse `http://` URLs.
    pub https_only: bool,
}

impl TargetPolicy {
    /// Checks what can be known before resolving: the scheme and an
    /// IP-literal host. Returns the reason for the `url` field.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        if self.https_only && url.scheme() != "https" {
            return Err("must use https (HOOKRELAY_HTTPS_ONLY is set)".to_owned());
        }
        vet_literal(url, &self.allow).map_err(|blocked| blocked.to_string())
    }
}

/// The IPv4 address an IPv6 address stands for, when it carries one.
fn carried_ipv4(addr: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = addr else { return None };
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let mapped = in_v6(v6, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96);
    let translated = in_v6(v6, [0, 0, 0, 0, 0xffff, 0, 0, 0], 96);
    // `::` and `::1` are the IPv6 unspecified and loopback addresses, not
    // compatible forms of 0.0.0.0 and 0.0.0.1.
    let compatible = in_v6(v6, [0; 8], 96) && bits > 1;
    let nat64 = in_v6(v6, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
    if mapped || translated || compatible || nat64 {
        return Some(low32);
    }
    if in_v6(v6, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

/// IPv4 ranges that are not the public internet (IANA special-purpose
/// registry), most specific first where they overlap.
const BLOCKED_V4: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "unspecified (\"this network\")"),
    ([10, 0, 0, 0], 8, "private"),
    ([100, 64, 0, 0], 10, "carrier-grade NAT"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private"),
    ([192, 0, 0, 0], 24, "IETF protocol assignment"),
    ([192, 0, 2, 0], 24, "documentation"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast"),
    ([192, 168, 0, 0], 16, "private"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation"),
    ([203, 0, 113, 0], 24, "documentation"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([255, 255, 255, 255], 32, "broadcast"),
    ([240, 0, 0, 0], 4, "reserved"),
];

/// IPv6 ranges that are not the public internet. The forms that carry an
/// IPv4 address are judged by it instead (see [`carried_ipv4`]).
const BLOCKED_V6: &[([u16; 8], u8, &str)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified"),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"),
    ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "local-use NAT64"),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo tunnel"),
    ([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "benchmarking"),
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "private (unique local)"),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
];

fn blocked_v4_range(addr: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(addr);
    BLOCKED_V4.iter().find_map(|(net, len, range)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        (bits & mask == u32::from(Ipv4Addr::from(*net)) & mask).then_some(*range)
    })
}

fn blocked_v6_range(addr: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = carried_ipv4(IpAddr::V6(addr)) {
        return blocked_v4_range(v4);
    }
    BLOCKED_V6
        .iter()
        .find_map(|(net, len, range)| in_v6(addr, *net, *len).then_some(*range))
}

fn in_v6(addr: Ipv6Addr, net: [u16; 8], len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(addr) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(addr: &str) -> Option<&'static str> {
        let addr: IpAddr = addr.parse().expect("test address");
        vet(addr, &[]).err().map(|blocked| blocked.range)
    }

    fn allow(nets: &[&str]) -> Vec<IpNet> {
        nets.iter().map(|n| n.parse().expect("test CIDR")).collect()
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(refused(addr), None, "{addr}");
        }
    }

    #[test]
    fn every_non_public_ipv4_range_is_refused() {
        for (addr, range) in [
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("0.1.2.3", "unspecified (\"this network\")"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF protocol assignment"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay anycast"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ] {
            assert_eq!(refused(addr), Some(range), "{addr}");
        }
    }

    #[test]
    fn every_non_public_ipv6_range_is_refused() {
        for (addr, range) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("100::1", "discard-only"),
            ("2001::1", "Teredo tunnel"),
            ("2001:2::1", "benchmarking"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("fc00::1", "private (unique local)"),
            ("fd12:3456::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(refused(addr), Some(range), "{addr}");
        }
    }

    #[test]
    fn ipv6_forms_carrying_ipv4_are_judged_by_the_ipv4_address() {
        for (addr, range) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.1.2.3", "private"),
            ("::127.0.0.1", "loopback"),
            ("::ffff:0.0.0.0", "unspecified (\"this network\")"),
            ("::ffff:0:127.0.0.1", "loopback"),
            ("::ffff:0:a9fe:a9fe", "link-local"),
            ("::ffff:0:192.168.1.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
        ] {
            assert_eq!(refused(addr), Some(range), "{addr}");
        }
    }

    #[test]
    fn the_allow_list_lets_its_ranges_through() {
        let allow = allow(&["127.0.0.0/8", "::1/128", "10.1.0.0/16"]);
        for addr in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
        ] {
            let addr: IpAddr = addr.parse().expect("test address");
            assert_eq!(vet(addr, &allow), Ok(()), "{addr}");
        }
        for addr in ["10.2.0.1", "169.254.169.254", "::2", "fe80::1"] {
            let addr: IpAddr = addr.parse().expect("test address");
            assert!(vet(addr, &allow).is_err(), "{addr}");
        }
    }

    #[test]
    fn the_refusal_names_the_address_and_its_range() {
        let blocked = vet("169.254.169.254".parse().expect("test address"), &[])
            .expect_err("link-local is refused");
        assert_eq!(
            blocked.to_string(),
            "destination 169.254.169.254 is refused: it is a link-local address (not in HOOKRELAY_ALLOW_TARGETS)"
        );
    }

    #[test]
    fn urls_are_checked_by_scheme_and_literal_host() {
        let policy = TargetPolicy::default();
        let check = |url: &str| policy.check_url(&Url::parse(url).expect("test URL"));
        for url in [
            "http://127.0.0.1/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:0:127.0.0.1]/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
        ] {
            assert!(check(url).is_err(), "{url}");
        }
        // Names are vetted when resolved, at delivery time.
        assert_eq!(check("http://localhost/"), Ok(()));
        assert_eq!(check("http://example.com/"), Ok(()));
        assert_eq!(check("https://8.8.8.8/"), Ok(()));

        let https_only = TargetPolicy {
            https_only: true,
            ..TargetPolicy::default()
        };
        assert!(https_only
            .check_url(&Url::parse("http://example.com/").expect("test URL"))
            .is_err());
        assert_eq!(
            https_only.check_url(&Url::parse("https://example.com/").expect("test URL")),
            Ok(())
        );
    }
}
