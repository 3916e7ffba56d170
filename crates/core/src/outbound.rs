//! Where careline may send requests of its own (webhook deliveries today,
//! any outbound URL later). An administrator's webhook URL must not turn
//! careline into a proxy to what only it can reach: loopback, link-local
//! (cloud metadata lives there), private networks, shared address space,
//! unspecified, multicast and broadcast addresses are refused unless the
//! allow-list in configuration names them. The check is on addresses, so it
//! runs on every address a name resolves to, each time careline connects
//! (a name that resolved to a public address at registration may resolve
//! to 127.0.0.1 later); the caller connects to exactly the address checked.

use crate::Error;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The rule named by every refusal.
pub const RULE: &str = "outbound-address-not-allowed";

/// The outbound allow-list: networks that may be reached although they are
/// loopback, private or link-local (a receiver on the same host, a pager
/// gateway on the internal network).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow: Vec<IpNet>,
}

/// Well-known cloud metadata endpoints, named as such in refusals.
const METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// Why `ip` is not a public unicast address, if it is not.
pub fn restricted(ip: IpAddr) -> Option<&'static str> {
    if METADATA.contains(&ip) {
        return Some("a cloud metadata address");
    }
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted(IpAddr::V4(v4));
            }
            let first = v6.segments().first().copied().unwrap_or(0);
            if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local (fe80::/10)")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (fc00::/7)")
            } else if first & 0xff00 == 0xff00 {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else if ip.is_loopback() {
        Some("loopback (127.0.0.0/8)")
    } else if ip.is_link_local() {
        Some("link-local (169.254.0.0/16)")
    } else if ip.is_private() {
        Some("private (RFC 1918)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space (100.64.0.0/10)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast, broadcast or reserved")
    } else {
        None
    }
}

impl OutboundPolicy {
    /// A policy allowing the given networks (`10.0.0.0/8`, `::1`, `127.0.0.1`).
    pub fn new(allow: &[&str]) -> Result<Self, Error> {
        let allow = allow
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        Error::invalid(format!(
                            "outbound allow-list entry '{s}' is not an address or network (10.0.0.0/8, ::1)"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OutboundPolicy { allow })
    }

    /// The networks allowed although restricted.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Whether careline may connect to `ip`: a public unicast address, or
    /// one the allow-list names.
    pub fn check(&self, what: &str, ip: IpAddr) -> Result<(), Error> {
        let Some(why) = restricted(ip) else {
            return Ok(());
        };
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        Err(Error::Unprocessable {
            rule: RULE,
            detail: format!(
                "{what} resolves to {ip}, which is {why}; careline does not send to loopback, link-local, private, shared, unspecified or metadata addresses unless the outbound allow-list names them"
            ),
        })
    }
}

/// Host, port and path of an `http://` URL, as a delivery connects to it.
/// IPv6 literals come back without their brackets.
pub fn http_target(url: &str) -> Result<(String, u16, String), Error> {
    let bad = || Error::invalid(format!("'{url}' is not an http://host[:port]/path URL"));
    let rest = url.trim().strip_prefix("http://").ok_or_else(bad)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(Error::invalid(
            "webhook URLs may not carry user names or passwords: the signature authenticates deliveries",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => 80,
    };
    if host.is_empty() {
        return Err(bad());
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((host.to_ascii_lowercase(), port, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &OutboundPolicy, ip: &str) -> bool {
        p.check("the URL", ip.parse().unwrap()).is_err()
    }

    #[test]
    fn loopback_link_local_private_shared_and_metadata_addresses_are_refused() {
        let p = OutboundPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "169.254.169.254",
            "169.254.1.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused(&p, ip), "{ip} must be refused");
        }
        for ip in [
            "93.184.215.14",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
        ] {
            assert!(!refused(&p, ip), "{ip} is public");
        }
    }

    #[test]
    fn a_refusal_names_the_rule_and_the_kind_of_address() {
        let e = OutboundPolicy::default()
            .check("the webhook URL", "169.254.169.254".parse().unwrap())
            .unwrap_err();
        match e {
            Error::Unprocessable { rule, detail } => {
                assert_eq!(rule, RULE);
                assert!(detail.contains("cloud metadata"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_allow_list_lets_named_networks_through_and_nothing_else() {
        let p = OutboundPolicy::new(&["127.0.0.1", "10.20.0.0/16"]).unwrap();
        assert!(!refused(&p, "127.0.0.1"));
        assert!(!refused(&p, "10.20.3.4"));
        assert!(refused(&p, "127.0.0.2"));
        assert!(refused(&p, "10.21.0.1"));
        assert!(refused(&p, "169.254.169.254"));
        assert!(OutboundPolicy::new(&["not-a-network"]).is_err());
    }

    #[test]
    fn http_targets_are_split_into_host_port_and_path() {
        assert_eq!(
            http_target("http://Hooks.Example:8080/a/b?x=1").unwrap(),
            ("hooks.example".into(), 8080, "/a/b?x=1".into())
        );
        assert_eq!(
            http_target("http://[::1]/hook").unwrap(),
            ("::1".into(), 80, "/hook".into())
        );
        assert_eq!(
            http_target("http://169.254.169.254").unwrap(),
            ("169.254.169.254".into(), 80, "/".into())
        );
        assert!(http_target("https://x/").is_err());
        assert!(http_target("http://user:pw@x/").is_err());
        assert!(http_target("http://x:99999/").is_err());
        assert!(http_target("http:///path").is_err());
    }
}
