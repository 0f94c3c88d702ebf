//! Server-side request forgery protection: deliveries go only to public addresses unless the
//! operator's allowlist says otherwise.
//!
//! The check happens where it cannot be dodged: in the HTTP client's DNS resolver, after
//! resolution and right before connecting, so a name that resolves to a private address (or
//! starts to, after registration) is refused at every attempt. URLs with an IP literal skip the
//! resolver, so they are checked before the request. Redirects are not followed (a 3xx answer is
//! a failed attempt), and proxies from the environment are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A network written `address/prefix` (a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                within(u128::from(u32::from(net)), u128::from(u32::from(ip)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => within(u128::from(net), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

fn within(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (net >> shift) == (ip >> shift)
}

/// Addresses no delivery goes to by default: this host, private networks, link-local (cloud
/// metadata services live at 169.254.169.254 and fd00:ec2::254), shared and reserved ranges.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) reaches IPv4 addresses: judge the embedded one.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return is_internal_v4(Ipv4Addr::new(a, b, c, d));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space, 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// Which addresses deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow: Vec<Cidr>,
}

impl AddressPolicy {
    /// Public addresses, and internal ones inside `allow`.
    pub fn new(allow: Vec<Cidr>) -> Self {
        AddressPolicy { allow }
    }

    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allow.iter().any(|cidr| cidr.contains(ip))
    }
}

/// Checks a URL's form: http or https, a host, no credentials, at most 2,048 characters.
pub fn parse_url(text: &str) -> Result<Url, String> {
    if text.len() > 2048 {
        return Err("at most 2048 characters".into());
    }
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http:// or https://".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; use a custom header".into());
    }
    Ok(url)
}

/// The host's address when the URL names one literally (reqwest does not resolve those).
fn literal_address(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Refuses a URL whose literal address the policy does not permit (the resolver sees names only).
pub fn check_literal(url: &Url, policy: &AddressPolicy) -> Result<(), String> {
    match literal_address(url) {
        Some(ip) if !policy.permits(ip) => Err(format!(
            "{ip} is a loopback, private, link-local or reserved address, which deliveries may not reach"
        )),
        _ => Ok(()),
    }
}

/// The registration check: the literal address, or every address the name resolves to now, must
/// be permitted. A name that does not resolve yet is accepted; every delivery checks again.
pub async fn check_registration(url: &Url, policy: &AddressPolicy) -> Result<(), String> {
    check_literal(url, policy)?;
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::net::lookup_host((host.to_owned(), port));
    let Ok(Ok(addresses)) = tokio::time::timeout(Duration::from_secs(3), lookup).await else {
        return Ok(());
    };
    for address in addresses {
        if !policy.permits(address.ip()) {
            return Err(format!(
                "{host} resolves to {}, a loopback, private, link-local or reserved address, which deliveries may not reach",
                address.ip()
            ));
        }
    }
    Ok(())
}

/// The HTTP client's resolver: the system's, minus the addresses the policy refuses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Only the permitted addresses are tried: a name that resolves to a public and an
            // internal address can never be steered to the internal one.
            let permitted: Vec<SocketAddr> = resolved.iter().copied().filter(|a| policy.permits(a.ip())).collect();
            if permitted.is_empty() {
                let refused: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
                return Err(format!(
                    "refused address: {host} resolves only to addresses deliveries may not reach ({})",
                    refused.join(", ")
                )
                .into());
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_allowed() {
        let policy = AddressPolicy::default();
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!policy.permits(ip(refused)), "{refused} must be refused");
        }
        for allowed in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:2800:220:1:248:1893:25c8:1946",
            "172.32.0.1",
        ] {
            assert!(policy.permits(ip(allowed)), "{allowed} must be allowed");
        }
    }

    #[test]
    fn the_allowlist_opens_exactly_its_networks() {
        let policy = AddressPolicy::new(vec![
            Cidr::parse("127.0.0.1").expect("host"),
            Cidr::parse("10.1.0.0/16").expect("net"),
            Cidr::parse("::1/128").expect("v6"),
        ]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(!policy.permits(ip("127.0.0.2")));
        assert!(policy.permits(ip("10.1.200.3")));
        assert!(!policy.permits(ip("10.2.0.1")));
        assert!(policy.permits(ip("::1")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!(Cidr::parse("0.0.0.0/0").expect("all").contains(ip("10.0.0.1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten/8").is_err());
    }

    #[test]
    fn urls_need_http_a_host_and_no_credentials() {
        assert!(parse_url("https://example.com/hook").is_ok());
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("https://user:pw@example.com/").is_err());
        assert!(parse_url("not a url").is_err());
        let literal = parse_url("http://[::1]:8080/x").expect("url");
        assert!(check_literal(&literal, &AddressPolicy::default()).is_err());
        let public = parse_url("http://93.184.216.34/x").expect("url");
        assert!(check_literal(&public, &AddressPolicy::default()).is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused_at_registration_and_by_the_resolver() {
        let url = parse_url("http://localhost:9/hook").expect("url");
        let error = check_registration(&url, &AddressPolicy::default())
            .await
            .expect_err("localhost");
        assert!(error.contains("localhost resolves to"), "{error}");
        let resolver = GuardedResolver::new(Arc::new(AddressPolicy::default()));
        let refused = resolver.resolve("localhost".parse().expect("name")).await;
        assert!(refused.err().expect("refused").to_string().contains("refused address"));
        let open = AddressPolicy::new(vec![Cidr::parse("127.0.0.0/8").unwrap(), Cidr::parse("::1").unwrap()]);
        assert!(check_registration(&url, &open).await.is_ok());
    }
}
