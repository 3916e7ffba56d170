//! Outbound addresses, resolved and checked: the one step between a URL an
//! administrator gave (a webhook) and a connection careline opens. The rule
//! itself is the domain's (`careline_core::outbound`); this adds the name
//! lookup, so registration and every delivery check what the name resolves
//! to at that moment.

use careline_core::Error;
use careline_core::outbound::{OutboundPolicy, http_target};
use std::net::SocketAddr;

/// The addresses an `http://` URL reaches now, each allowed by `policy`, and
/// the path to request. A name that resolves to any refused address is
/// refused as a whole; connect only to the addresses returned.
pub async fn resolve(
    policy: &OutboundPolicy,
    url: &str,
) -> Result<(Vec<SocketAddr>, String), Error> {
    let (host, port, path) = http_target(url)?;
    let what = format!("the URL's host {host}");
    let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Error::Unprocessable {
                rule: "outbound-host-unresolvable",
                detail: format!("{what} does not resolve: {e}"),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Error::Unprocessable {
            rule: "outbound-host-unresolvable",
            detail: format!("{what} resolves to no address"),
        });
    }
    for a in &addrs {
        policy.check(&what, a.ip())?;
    }
    Ok((addrs, path))
}
