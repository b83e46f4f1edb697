use super::*;

/// The example of DESIGN.md section 6, verbatim.
const DESIGN_EXAMPLE: &str = r#"
[router]
asn = 65000
router-id = "192.0.2.1"
[ctl]
socket = "/run/flatedge/ctl.sock"
[[interface]]
name = "up0"
[[interface]]
name = "k8s0"
[[bgp.listen]]                 # Cilium nodes dial in from this range
range = "2001:db8:1::/64"
peer-asn = 65001
import = ["2001:db8:100::/40 le 64", "2001:db8:96::/112 le 128"]
max-prefixes = 1000
graceful-restart = true
[[bgp.neighbor]]               # a fixed peer, e.g. the upstream router
address = "2001:db8:ffff::1"
peer-asn = 65100
export = ["2001:db8:100::/40"]
[[route]]                      # static routes
prefix = "::/0"
via = ["2001:db8:ffff::1"]
"#;

/// The smallest valid configuration; tests append tables to it.
const MINIMAL: &str = r#"
[router]
asn = 65000
router-id = "192.0.2.1"
[[interface]]
name = "up0"
"#;

fn prefix(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn rule(s: &str) -> PrefixRule {
    s.parse().unwrap()
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    text.parse()
}

/// The single problem of `text`; fails if it parses or has several.
fn only_error(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("parsed: {c:?}"),
        Err(e) => {
            let mut errors = e.into_iter().collect::<Vec<_>>();
            assert_eq!(errors.len(), 1, "{errors:#?}");
            errors.remove(0)
        }
    }
}

/// The single problem of `MINIMAL` followed by `extra`.
fn error_with(extra: &str) -> ConfigError {
    only_error(&format!("{MINIMAL}{extra}"))
}

fn at(e: &ConfigError) -> (&str, Option<usize>) {
    let l = e.location().expect("a location");
    (l.path.as_str(), l.line)
}

#[test]
fn design_example_parses_to_its_values() {
    let c = parse(DESIGN_EXAMPLE).unwrap();
    assert_eq!(c.router.asn, Asn(65000));
    assert_eq!(c.router.router_id, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(c.router.worker_cores, None);
    assert_eq!(c.ctl.socket, PathBuf::from("/run/flatedge/ctl.sock"));
    let names: Vec<&str> = c.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["up0", "k8s0"]);
    assert!(c.interfaces.iter().all(|i| i.mtu.is_none()));

    assert_eq!(c.bgp.port, 179);
    assert_eq!(c.bgp.listen.len(), 1);
    let l = &c.bgp.listen[0];
    assert_eq!(l.range, prefix("2001:db8:1::/64"));
    assert_eq!(l.session.peer_asn, Asn(65001));
    let import = l.session.import.as_ref().unwrap();
    assert_eq!(
        import.rules(),
        [
            rule("2001:db8:100::/40 le 64"),
            rule("2001:db8:96::/112 le 128")
        ]
    );
    assert_eq!(
        (import.rules()[0].ge, import.rules()[0].le),
        (40, 64),
        "le without ge starts at the prefix length"
    );
    assert_eq!(l.session.max_prefixes, NonZeroU32::new(1000));
    assert!(l.session.graceful_restart);
    assert!(l.session.export.rules().is_empty());

    assert_eq!(c.bgp.neighbors.len(), 1);
    let n = &c.bgp.neighbors[0];
    assert_eq!(n.address, addr("2001:db8:ffff::1"));
    assert_eq!(n.session.peer_asn, Asn(65100));
    assert_eq!(n.session.export.rules(), [rule("2001:db8:100::/40")]);
    // External, without an import list: accepts nothing (RFC 8212); the
    // example imports nothing from its upstream (its default route is a
    // static one) and exports the aggregate.
    assert_eq!(n.session.import, Some(PrefixList::new(Vec::new())));
    assert!(n.session.import_default_deny);
    assert!(!l.session.import_default_deny, "it has a list");
    assert!(!n.passive);

    assert_eq!(
        c.routes,
        [StaticRoute {
            prefix: Prefix::DEFAULT,
            via: vec![addr("2001:db8:ffff::1")],
        }]
    );
}

#[test]
fn defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.router.worker_cores, None);
    assert_eq!(
        c.router.coalesce,
        crate::worker::Coalesce {
            usecs: DEFAULT_RX_USECS,
            frames: DEFAULT_RX_FRAMES
        }
    );
    assert_eq!(c.ctl.socket, PathBuf::from(DEFAULT_CTL_SOCKET));
    assert_eq!(c.interfaces[0].mtu, None);
    assert_eq!(c.bgp.port, 179);
    assert!(c.bgp.aggregates.is_empty());
    assert_eq!(c.bgp.multipath.max_paths, 16);
    assert!(!c.bgp.multipath.as_path_relax);
    assert!(c.bgp.listen.is_empty() && c.bgp.neighbors.is_empty());
    assert!(c.routes.is_empty());
    assert_eq!(
        c.icmp,
        Icmp {
            rate: 1000,
            burst: 50
        }
    );
    assert_eq!(c.metrics.listen, None);

    let c = parse(&format!(
        "{MINIMAL}[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 65100\n"
    ))
    .unwrap();
    let s = &c.bgp.neighbors[0].session;
    assert_eq!(
        s.import,
        Some(PrefixList::new(Vec::new())),
        "no import list on an external session accepts nothing (RFC 8212)"
    );
    assert!(s.import_default_deny);
    // An internal one (our own AS) accepts every route without a list.
    let c = parse(&format!(
        "{MINIMAL}[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 65000\n"
    ))
    .unwrap();
    let internal = &c.bgp.neighbors[0].session;
    assert_eq!(internal.import, None);
    assert!(!internal.import_default_deny);
    assert!(
        s.export.rules().is_empty(),
        "nothing is exported by default"
    );
    assert_eq!(s.max_prefixes, None);
    assert_eq!(s.max_prefixes_idle_time, Duration::from_secs(30));
    assert!(s.graceful_restart);
    assert_eq!(s.hold_time.seconds(), 90);
    assert_eq!(s.connect_retry, Duration::from_secs(30));
    assert_eq!(s.password, None);
    assert_eq!(s.ttl_security, None);
    assert!(!c.bgp.neighbors[0].passive);
}

#[test]
fn every_optional_key() {
    let c = parse(
        r#"
[router]
asn = 4200000000
router-id = "10.0.0.1"
worker-cores = [1, 3]
[ctl]
socket = "/tmp/fe.sock"
[[interface]]
name = "up0"
mtu = 1700
[bgp]
port = 1179
aggregates = ["2001:db8:200::/40", "2001:db8:300::/40"]
[bgp.multipath]
max-paths = 4
as-path-relax = true
[[bgp.listen]]
range = "2001:db8:1::/64"
peer-asn = 65001
import = []
export = ["::/0"]
max-prefixes = 10
max-prefixes-idle-time = 120
graceful-restart = false
hold-time = 0
password = "s3cret"
ttl-security = 1
[[bgp.neighbor]]
address = "2001:db8:2::1"
peer-asn = 4200000000
passive = true
hold-time = 3
connect-retry = 5
[[route]]
prefix = "2001:db8:100::/40"
via = ["2001:db8:1::10", "2001:db8:1::11"]
[icmp]
rate = 0
burst = 0
[metrics]
listen = "[::1]:9100"
"#,
    )
    .unwrap();
    assert_eq!(c.router.asn, Asn(4_200_000_000));
    assert_eq!(c.router.worker_cores, Some(vec![1, 3]));
    assert_eq!(c.ctl.socket, PathBuf::from("/tmp/fe.sock"));
    assert_eq!(c.interfaces[0].mtu, Some(1700));
    assert_eq!(c.bgp.port, 1179);
    assert_eq!(
        c.bgp.aggregates,
        [prefix("2001:db8:200::/40"), prefix("2001:db8:300::/40")]
    );
    assert_eq!(
        c.bgp.multipath,
        Multipath {
            max_paths: 4,
            as_path_relax: true
        }
    );
    let s = &c.bgp.listen[0].session;
    assert_eq!(s.import, Some(PrefixList::default()), "[] denies all");
    assert_eq!(s.export.rules(), [rule("::/0")]);
    assert_eq!(s.max_prefixes_idle_time, Duration::from_secs(120));
    assert!(!s.graceful_restart);
    assert_eq!(s.hold_time, HoldTime::DISABLED);
    assert_eq!(s.password.as_ref().unwrap().as_bytes(), b"s3cret");
    assert_eq!(s.ttl_security, Some(1));
    let n = &c.bgp.neighbors[0];
    assert!(n.passive);
    assert_eq!(n.session.peer_asn, c.router.asn, "an internal peer is fine");
    assert_eq!(n.session.hold_time.seconds(), 3);
    assert_eq!(n.session.connect_retry, Duration::from_secs(5));
    assert_eq!(c.routes[0].via.len(), 2);
    assert_eq!(c.icmp, Icmp { rate: 0, burst: 0 });
    assert_eq!(c.metrics.listen, Some("[::1]:9100".parse().unwrap()));
}

#[test]
fn password_is_not_printed() {
    let c = parse(&format!(
        "{MINIMAL}[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 1\npassword = \"hunter2\"\n"
    ))
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("Password(<redacted>)"));
}

// --- Pass 1: shape -------------------------------------------------------

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    for (text, key, line) in [
        (format!("{MINIMAL}colour = \"red\"\n"), "colour", 7),
        (
            "[router]\nasn = 1\nrouter-id = \"192.0.2.1\"\nrouterid = \"x\"\n".to_string(),
            "routerid",
            4,
        ),
        (format!("{MINIMAL}mut = 1500\n"), "mut", 7),
        (
            format!("{MINIMAL}[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-as = 1\n"),
            "peer-as",
            9,
        ),
        (
            format!("{MINIMAL}[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-asn = 1\naddress = \"2001:db8::1\"\n"),
            "address",
            10,
        ),
        (format!("{MINIMAL}[bgp.multipath]\nrelax = true\n"), "relax", 8),
        (format!("{MINIMAL}[icmp]\nratelimit = 5\n"), "ratelimit", 8),
        (format!("{MINIMAL}[routes]\n"), "routes", 7),
        (format!("{MINIMAL}[[bgp.neighbour]]\n"), "neighbour", 7),
    ] {
        let e = only_error(&text);
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("unknown field `{key}`")), "{msg}");
        assert_eq!(e.line(), Some(line), "{msg}");
    }
    // An unknown table is named in the table that encloses it, not as a
    // table of its own.
    let e = only_error(&format!("{MINIMAL}[[bgp.neighbour]]\n"));
    assert!(
        e.to_string().starts_with("bgp: unknown field `neighbour`"),
        "{e}"
    );
    let e = only_error(&format!("{MINIMAL}[routes]  # a comment\n"));
    assert!(e.to_string().starts_with("unknown field `routes`"), "{e}");
    // A typo in the first name is at the top, not in a table named so.
    let e = only_error(&format!("{MINIMAL}[bpg.multipath]\n"));
    assert!(e.to_string().starts_with("unknown field `bpg`"), "{e}");
    let e = only_error(&format!("{MINIMAL}[icmp.icmp]\n"));
    assert!(
        e.to_string().starts_with("icmp: unknown field `icmp`"),
        "{e}"
    );
}

#[test]
fn missing_and_mistyped_keys_are_syntax_errors() {
    let e = only_error("[[interface]]\nname = \"up0\"\n");
    assert!(e.to_string().contains("missing field `router`"), "{e}");
    let e = only_error("[router]\nasn = 1\n[[interface]]\nname = \"up0\"\n");
    assert!(e.to_string().contains("router-id"), "{e}");
    let e = only_error("[router]\nasn = -1\nrouter-id = \"192.0.2.1\"\n");
    assert!(
        matches!(e, ConfigError::Syntax { line: Some(2), .. }),
        "{e:?}"
    );
    let e = only_error("[router]\nasn = 1\nrouter-id = 192.0.2.1\n");
    assert!(
        matches!(e, ConfigError::Syntax { line: Some(3), .. }),
        "{e:?}"
    );
    let e = error_with("[[route]]\nprefix = \"::/0\"\nvia = \"2001:db8::1\"\n");
    assert!(
        matches!(e, ConfigError::Syntax { line: Some(9), .. }),
        "{e:?}"
    );
}

/// A syntax-pass error names the key (tables of arrays counted from 0)
/// and says a number's range in words.
#[test]
fn syntax_errors_name_the_key() {
    let neighbor = "[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 65001\n";
    let e = error_with(&format!("{neighbor}{neighbor}hold-time = 70000\n"));
    assert_eq!(
        e.to_string(),
        "bgp.neighbor[1].hold-time: invalid value: integer `70000`, \
         expected a whole number from 0 to 65535"
    );
    let e = only_error("[router]\nasn = 1\n[[interface]]\nname = \"up0\"\n");
    assert_eq!(e.to_string(), "router: missing field `router-id`");
    // A value over several lines: the key above it.
    let e = error_with("[bgp]\naggregates = [\n  \"2001:db8::/32\",\n  7,\n]\n");
    assert!(e.to_string().starts_with("bgp.aggregates: "), "{e}");
    let e = error_with("[bgp]\nport = \"179\"\n");
    assert!(e.to_string().starts_with("bgp.port: invalid type"), "{e}");
    // An unknown key: its table (the message names the key).
    let e = error_with("[[interface]]\nname = \"k8s0\"\nmtu = 1500\nspeed = 10\n");
    assert!(
        e.to_string()
            .starts_with("interface[1]: unknown field `speed`"),
        "{e}"
    );
}

// --- Pass 2: one test per problem ----------------------------------------

#[test]
fn listen_range_not_a_prefix() {
    let e = error_with(
        "[[bgp.listen]]\nrange = \"2001:db8:1::/64\"\npeer-asn = 1\n\
         [[bgp.listen]]\nrange = \"2001:db8::/200\"\npeer-asn = 1\n",
    );
    assert!(matches!(e, ConfigError::NotIpv6Prefix { .. }));
    assert_eq!(at(&e), ("bgp.listen[1].range", Some(11)));
    assert_eq!(
        e.to_string(),
        "bgp.listen[1].range: 2001:db8::/200 is not an IPv6 prefix (the length must be 0 to 128)"
    );
    for (bad, why) in [
        ("2001:db8::", "expected ADDRESS/LENGTH"),
        ("192.0.2.0/24", "that is IPv4"),
        ("2001:db8::g/64", "not an IPv6 address"),
        ("2001:db8::/x", "the length must be 0 to 128"),
    ] {
        let e = error_with(&format!(
            "[[bgp.listen]]\nrange = \"{bad}\"\npeer-asn = 1\n"
        ));
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[test]
fn prefix_with_host_bits() {
    let e = error_with("[[route]]\nprefix = \"2001:db8::1/64\"\nvia = [\"2001:db8:ffff::1\"]\n");
    assert!(matches!(e, ConfigError::HostBits { .. }));
    assert_eq!(at(&e), ("route[0].prefix", Some(8)));
    assert_eq!(
        e.to_string(),
        "route[0].prefix: 2001:db8::1/64 has host bits set; did you mean 2001:db8::/64?"
    );
}

#[test]
fn static_route_via_not_ipv6() {
    let e = error_with("[[route]]\nprefix = \"::/0\"\nvia = [\"2001:db8::1\", \"192.0.2.254\"]\n");
    assert!(matches!(e, ConfigError::Ipv4Address { .. }));
    assert_eq!(at(&e), ("route[0].via[1]", Some(9)));
    assert_eq!(
        e.to_string(),
        "route[0].via[1]: 192.0.2.254 is an IPv4 address; flatedge routes IPv6 only, give an IPv6 address"
    );
    let e = error_with("[[route]]\nprefix = \"::/0\"\nvia = [\"up0\"]\n");
    assert!(matches!(e, ConfigError::NotIpv6Address { .. }));
    assert_eq!(e.to_string(), "route[0].via[0]: up0 is not an IPv6 address");
}

#[test]
fn unusable_next_hops_and_peers() {
    for (a, why) in [
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("ff02::2", "multicast"),
        ("::ffff:192.0.2.1", "IPv4-mapped"),
        ("fe80::1", "link-local next hop needs an interface"),
    ] {
        let e = error_with(&format!("[[route]]\nprefix = \"::/0\"\nvia = [\"{a}\"]\n"));
        assert!(matches!(e, ConfigError::UnusableAddress { .. }), "{e:?}");
        assert!(e.to_string().contains(why), "{e}");
    }
    let e = error_with("[[bgp.neighbor]]\naddress = \"fe80::1\"\npeer-asn = 1\n");
    assert!(matches!(e, ConfigError::UnusableAddress { .. }));
    assert_eq!(at(&e), ("bgp.neighbor[0].address", Some(8)));
    assert_eq!(
        e.to_string(),
        "bgp.neighbor[0].address: fe80::1 cannot be used here: it is link-local; peer with the node's global address"
    );
    let e = error_with("[[bgp.neighbor]]\naddress = \"192.0.2.2\"\npeer-asn = 1\n");
    assert!(matches!(e, ConfigError::Ipv4Address { .. }));
}

#[test]
fn router_id_not_a_dotted_quad() {
    for bad in ["2001:db8::1", "192.0.2", "1", "192.0.2.256", "router1"] {
        let e = only_error(&format!(
            "[router]\nasn = 1\nrouter-id = \"{bad}\"\n[[interface]]\nname = \"up0\"\n"
        ));
        assert!(matches!(e, ConfigError::RouterId { .. }), "{bad}: {e:?}");
        assert_eq!(at(&e), ("router.router-id", Some(3)));
        assert!(
            e.to_string().starts_with(&format!(
                "router.router-id: \"{bad}\" is not an IPv4 address in dotted-quad form"
            )),
            "{e}"
        );
    }
}

#[test]
fn router_id_zero() {
    let e =
        only_error("[router]\nasn = 1\nrouter-id = \"0.0.0.0\"\n[[interface]]\nname = \"up0\"\n");
    assert!(matches!(e, ConfigError::RouterIdZero { .. }));
    assert!(e
        .to_string()
        .starts_with("router.router-id: 0.0.0.0 is not a valid BGP identifier"));
}

#[test]
fn asn_zero() {
    let e =
        only_error("[router]\nasn = 0\nrouter-id = \"192.0.2.1\"\n[[interface]]\nname = \"up0\"\n");
    assert!(matches!(e, ConfigError::AsnZero { .. }));
    assert_eq!(
        e.to_string(),
        "router.asn: AS 0 is reserved and cannot be used (RFC 7607)"
    );
    let e = error_with("[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 0\n");
    assert!(matches!(e, ConfigError::AsnZero { .. }));
    assert_eq!(at(&e), ("bgp.neighbor[0].peer-asn", Some(9)));
}

#[test]
fn the_last_asns_are_reserved() {
    let e = error_with("[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 4294967295\n");
    assert!(
        matches!(e, ConfigError::AsnReserved { asn: u32::MAX, .. }),
        "{e:?}"
    );
    assert_eq!(at(&e), ("bgp.neighbor[0].peer-asn", Some(9)));
    let e = only_error(
        "[router]\nasn = 65535\nrouter-id = \"192.0.2.1\"\n[[interface]]\nname = \"up0\"\n",
    );
    assert_eq!(
        e.to_string(),
        "router.asn: AS 65535 is reserved and cannot be used (RFC 7300)"
    );
}

#[test]
fn default_aggregate() {
    let e = error_with("[bgp]\naggregates = [\"2001:db8::/32\", \"::/0\"]\n");
    assert!(matches!(e, ConfigError::DefaultAggregate { .. }), "{e:?}");
    assert_eq!(at(&e), ("bgp.aggregates[1]", Some(8)));
    assert!(e.to_string().contains("[[route]] for ::/0"), "{e}");
}

#[test]
fn as_trans() {
    let e = error_with("[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-asn = 23456\n");
    assert!(matches!(e, ConfigError::AsTrans { .. }));
    assert_eq!(at(&e), ("bgp.listen[0].peer-asn", Some(9)));
}

#[test]
fn connect_retry_zero() {
    let e = error_with(
        "[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 1\nconnect-retry = 0\n",
    );
    assert!(matches!(e, ConfigError::ConnectRetryZero { .. }));
    assert_eq!(at(&e), ("bgp.neighbor[0].connect-retry", Some(10)));
}

#[test]
fn hold_time_one_or_two() {
    for s in [1, 2] {
        let e = error_with(&format!(
            "[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 1\nhold-time = {s}\n"
        ));
        assert!(matches!(e, ConfigError::HoldTime { .. }));
        assert_eq!(at(&e), ("bgp.neighbor[0].hold-time", Some(10)));
        assert_eq!(
            e.to_string(),
            format!("bgp.neighbor[0].hold-time: a hold time of {s} s is not allowed; use 0 (no keepalives) or 3 s or more (RFC 4271 section 4.2)")
        );
    }
}

#[test]
fn max_prefixes_zero() {
    let e =
        error_with("[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-asn = 1\nmax-prefixes = 0\n");
    assert!(matches!(e, ConfigError::MaxPrefixesZero { .. }));
    assert_eq!(
        e.to_string(),
        "bgp.listen[0].max-prefixes: 0 would refuse every route; omit max-prefixes for no limit"
    );
}

#[test]
fn import_rule_ge_above_le() {
    let e = error_with(
        "[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-asn = 1\n\
         import = [\"2001:db8:100::/40 le 64\", \"2001:db8:200::/40 ge 64 le 48\"]\n",
    );
    assert!(matches!(
        e,
        ConfigError::PrefixRule {
            error: PrefixRuleError::BadRange { .. },
            ..
        }
    ));
    assert_eq!(at(&e), ("bgp.listen[0].import[1]", Some(10)));
    assert_eq!(
        e.to_string(),
        "bgp.listen[0].import[1]: lengths must satisfy 40 <= ge <= le <= 128, got ge 64 le 48"
    );
}

#[test]
fn import_and_export_rules_that_do_not_parse() {
    let e = error_with(
        "[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 1\nexport = [\"2001:db8::/32 lt 48\"]\n",
    );
    assert!(matches!(e, ConfigError::PrefixRule { .. }));
    assert_eq!(at(&e).0, "bgp.neighbor[0].export[0]");
    assert!(e.to_string().contains("unexpected \"lt\""), "{e}");
    let e = error_with(
        "[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 1\nimport = [\"2001:db8::1/32\"]\n",
    );
    assert!(e.to_string().contains("host bits"), "{e}");
}

#[test]
fn password_length() {
    let long = "x".repeat(81);
    for (p, len) in [("", 0), (long.as_str(), 81)] {
        let e = error_with(&format!(
            "[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 1\npassword = \"{p}\"\n"
        ));
        assert!(matches!(e, ConfigError::PasswordLength { .. }));
        assert_eq!(
            e.to_string(),
            format!("bgp.neighbor[0].password: a TCP MD5 password must be 1 to 80 bytes, this one is {len}")
        );
    }
    let ok = "x".repeat(80);
    parse(&format!(
        "{MINIMAL}[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 1\npassword = \"{ok}\"\n"
    ))
    .unwrap();
}

#[test]
fn ttl_security_range() {
    for hops in [0, 255, 1000] {
        let e = error_with(&format!(
            "[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-asn = 1\nttl-security = {hops}\n"
        ));
        assert!(matches!(e, ConfigError::TtlSecurity { .. }), "{e:?}");
        assert_eq!(at(&e), ("bgp.listen[0].ttl-security", Some(10)));
    }
}

#[test]
fn neighbor_inside_a_listen_range() {
    let e = error_with(
        "[[bgp.listen]]\nrange = \"2001:db8:1::/64\"\npeer-asn = 65001\n\
         [[bgp.neighbor]]\naddress = \"2001:db8:1::5\"\npeer-asn = 65001\n",
    );
    assert!(matches!(e, ConfigError::NeighborInListenRange { .. }));
    assert_eq!(at(&e), ("bgp.neighbor[0].address", Some(11)));
    assert_eq!(
        e.to_string(),
        "bgp.neighbor[0].address: neighbor 2001:db8:1::5 is inside bgp.listen[0].range 2001:db8:1::/64; \
         a peer is either a neighbor or comes from a listen range, not both"
    );
}

#[test]
fn duplicate_neighbors() {
    let e = error_with(
        "[[bgp.neighbor]]\naddress = \"2001:db8::1\"\npeer-asn = 1\n\
         [[bgp.neighbor]]\naddress = \"2001:db8:0::1\"\npeer-asn = 2\n",
    );
    assert!(matches!(e, ConfigError::DuplicateNeighbor { .. }));
    assert_eq!(
        e.to_string(),
        "bgp.neighbor[1].address: neighbor 2001:db8::1 is already configured at bgp.neighbor[0].address"
    );
}

#[test]
fn overlapping_listen_ranges() {
    let e = error_with(
        "[[bgp.listen]]\nrange = \"2001:db8::/48\"\npeer-asn = 1\n\
         [[bgp.listen]]\nrange = \"2001:db8:0:1::/64\"\npeer-asn = 2\n",
    );
    assert!(matches!(e, ConfigError::ListenOverlap { .. }));
    assert_eq!(at(&e), ("bgp.listen[1].range", Some(11)));
    assert_eq!(
        e.to_string(),
        "bgp.listen[1].range: 2001:db8:0:1::/64 overlaps bgp.listen[0].range 2001:db8::/48; \
         a peer connecting from the overlap would match both"
    );
}

#[test]
fn max_paths_range() {
    for n in [0, 1025] {
        let e = error_with(&format!("[bgp.multipath]\nmax-paths = {n}\n"));
        assert!(matches!(e, ConfigError::MaxPaths { .. }));
        assert_eq!(at(&e), ("bgp.multipath.max-paths", Some(8)));
    }
    let c = parse(&format!("{MINIMAL}[bgp.multipath]\nmax-paths = 1\n")).unwrap();
    assert_eq!(c.bgp.multipath.max_paths, 1);
}

#[test]
fn bgp_port_zero() {
    let e = error_with("[bgp]\nport = 0\n");
    assert!(matches!(e, ConfigError::PortZero { .. }));
    assert_eq!(
        e.to_string(),
        "bgp.port: port 0 is not a TCP port to listen on or connect to"
    );
}

#[test]
fn no_interfaces() {
    let e = only_error("[router]\nasn = 1\nrouter-id = \"192.0.2.1\"\n");
    assert!(matches!(e, ConfigError::NoInterfaces));
    assert_eq!(e.line(), None);
}

#[test]
fn bad_interface_names() {
    for name in [
        "",
        "averyveryverylongname",
        "..",
        "up/0",
        "up 0",
        "up0:1",
        "up\\u0000",
        "up\\u001b",
    ] {
        let e = error_with(&format!("[[interface]]\nname = \"{name}\"\n"));
        assert!(
            matches!(e, ConfigError::InterfaceName { .. }),
            "{name}: {e:?}"
        );
        assert_eq!(at(&e), ("interface[1].name", Some(8)));
    }
}

#[test]
fn duplicate_interfaces() {
    let e = error_with("[[interface]]\nname = \"k8s0\"\n[[interface]]\nname = \"up0\"\n");
    assert!(matches!(e, ConfigError::DuplicateInterface { .. }));
    assert_eq!(at(&e), ("interface[2].name", Some(10)));
    assert_eq!(
        e.to_string(),
        "interface[2].name: interface up0 is already configured at interface[0].name"
    );
}

/// The XDP program has 64 port slots: a 65th interface is refused with
/// its place in the file, not found at start after 64 attaches.
#[test]
fn more_interfaces_than_port_slots() {
    // MINIMAL has one interface; 63 more fit.
    let fits: String = (1..64)
        .map(|i| format!("[[interface]]\nname = \"p{i}\"\n"))
        .collect();
    parse(&format!("{MINIMAL}{fits}")).unwrap();
    let e = error_with(&format!("{fits}[[interface]]\nname = \"p64\"\n"));
    assert!(matches!(e, ConfigError::TooManyInterfaces { .. }), "{e:?}");
    assert_eq!(at(&e).0, "interface[64].name");
    assert!(e.to_string().contains("at most 64 interfaces"), "{e}");
}

#[test]
fn mtu_out_of_range() {
    // 1779 and up do not fit a 2048-byte AF_XDP frame with the kernel's
    // headroom and an Ethernet header: the kernel would drop them at the
    // redirect, without a Packet Too Big.
    for mtu in [1279, 0, 1779, 9000, 65536] {
        let e = error_with(&format!("[[interface]]\nname = \"k8s0\"\nmtu = {mtu}\n"));
        assert!(matches!(e, ConfigError::Mtu { .. }), "{e:?}");
        assert_eq!(at(&e), ("interface[1].mtu", Some(9)));
        assert!(e.to_string().contains("to 1778"), "{e}");
    }
    for mtu in [1280, 1778] {
        let c = parse(&format!(
            "{MINIMAL}[[interface]]\nname = \"k8s0\"\nmtu = {mtu}\n"
        ))
        .unwrap();
        assert_eq!(c.interfaces[1].mtu, Some(mtu));
    }
}

#[test]
fn static_route_without_next_hops() {
    let e = error_with("[[route]]\nprefix = \"::/0\"\nvia = []\n");
    assert!(matches!(e, ConfigError::NoNextHops { .. }));
    assert_eq!(
        e.to_string(),
        "route[0].via: a static route needs at least one next hop"
    );
}

#[test]
fn static_route_with_a_next_hop_twice() {
    let e =
        error_with("[[route]]\nprefix = \"::/0\"\nvia = [\"2001:db8::1\", \"2001:db8:0::1\"]\n");
    assert!(matches!(e, ConfigError::DuplicateNextHop { .. }));
    assert_eq!(at(&e).0, "route[0].via[1]");
}

#[test]
fn static_route_with_too_many_next_hops() {
    let via: Vec<String> = (1..=fib::MAX_MEMBERS + 1)
        .map(|i| format!("\"2001:db8::{i:x}\""))
        .collect();
    let e = error_with(&format!(
        "[[route]]\nprefix = \"::/0\"\nvia = [{}]\n",
        via.join(", ")
    ));
    assert!(matches!(
        e,
        ConfigError::TooManyNextHops { count: 1025, .. }
    ));
}

#[test]
fn duplicate_static_routes() {
    let e = error_with(
        "[[route]]\nprefix = \"::/0\"\nvia = [\"2001:db8::1\"]\n\
         [[route]]\nprefix = \"0::/0\"\nvia = [\"2001:db8::2\"]\n",
    );
    assert!(matches!(e, ConfigError::DuplicateRoute { .. }));
    assert_eq!(at(&e), ("route[1].prefix", Some(11)));
}

#[test]
fn worker_cores_empty_or_repeated() {
    let e = only_error(
        "[router]\nasn = 1\nrouter-id = \"192.0.2.1\"\nworker-cores = []\n[[interface]]\nname = \"up0\"\n",
    );
    assert!(matches!(e, ConfigError::NoWorkerCores { .. }));
    assert_eq!(at(&e), ("router.worker-cores", Some(4)));
    let e = only_error(
        "[router]\nasn = 1\nrouter-id = \"192.0.2.1\"\nworker-cores = [1, 2, 1]\n[[interface]]\nname = \"up0\"\n",
    );
    assert!(matches!(
        e,
        ConfigError::DuplicateWorkerCore { core: 1, .. }
    ));
    assert_eq!(at(&e).0, "router.worker-cores[2]");
}

#[test]
fn rx_coalescing_values_and_ranges() {
    let base = "[router]\nasn = 1\nrouter-id = \"192.0.2.1\"\n";
    let iface = "[[interface]]\nname = \"up0\"\n";
    let c = parse(&format!("{base}rx-usecs = 0\nrx-frames = 64\n{iface}")).unwrap();
    assert_eq!(
        c.router.coalesce,
        crate::worker::Coalesce {
            usecs: 0,
            frames: 64
        }
    );
    let e = only_error(&format!("{base}rx-usecs = 1001\n{iface}"));
    assert!(matches!(
        e,
        ConfigError::OutOfRange {
            value: 1001,
            min: 0,
            max: 1000,
            ..
        }
    ));
    assert_eq!(at(&e), ("router.rx-usecs", Some(4)));
    assert_eq!(
        e.to_string(),
        "router.rx-usecs: 1001 is out of range; use 0 to 1000"
    );
    for bad in [0, 65] {
        let e = only_error(&format!("{base}rx-frames = {bad}\n{iface}"));
        assert!(matches!(
            e,
            ConfigError::OutOfRange {
                min: 1,
                max: 64,
                ..
            }
        ));
        assert_eq!(at(&e), ("router.rx-frames", Some(4)));
    }
}

#[test]
fn icmp_burst_zero() {
    let e = error_with("[icmp]\nrate = 10\nburst = 0\n");
    assert!(matches!(e, ConfigError::IcmpBurstZero { .. }));
    assert_eq!(at(&e), ("icmp.burst", Some(9)));
}

#[test]
fn relative_ctl_socket() {
    let e = error_with("[ctl]\nsocket = \"ctl.sock\"\n");
    assert!(matches!(e, ConfigError::RelativeSocket { .. }));
    assert_eq!(
        e.to_string(),
        "ctl.socket: \"ctl.sock\" is not an absolute path"
    );
}

#[test]
fn metrics_listen_not_a_socket_address() {
    for bad in ["::1:9100", "localhost:9100", "[::1]"] {
        let e = error_with(&format!("[metrics]\nlisten = \"{bad}\"\n"));
        assert!(matches!(e, ConfigError::SocketAddr { .. }), "{bad}: {e:?}");
        assert_eq!(at(&e), ("metrics.listen", Some(8)));
    }
}

// --- Reporting ------------------------------------------------------------

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[router]
asn = 0
router-id = "192.0.2.1"
[[interface]]
name = "up0"
[[interface]]
name = "up0"
[[bgp.listen]]
range = "2001:db8::/200"
peer-asn = 65001
hold-time = 2
[[route]]
prefix = "::/0"
via = ["192.0.2.254"]
"#;
    let e = parse(text).unwrap_err();
    let where_: Vec<(&str, Option<usize>)> = e.errors().iter().map(at).collect();
    assert_eq!(
        where_,
        [
            ("router.asn", Some(3)),
            ("interface[1].name", Some(8)),
            ("bgp.listen[0].range", Some(10)),
            ("bgp.listen[0].hold-time", Some(12)),
            ("route[0].via[0]", Some(15)),
        ]
    );
    let shown = e.to_string();
    assert_eq!(shown.lines().count(), 5, "{shown}");
    assert!(shown.starts_with("line 3: router.asn: AS 0"), "{shown}");
}

#[test]
fn from_file_names_the_file_and_line() {
    let dir = std::env::temp_dir().join(format!("flatedge-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, format!("{MINIMAL}[bgp]\nport = 0\n")).unwrap();
    let e = Config::from_file(&path).unwrap_err();
    assert_eq!(e.file(), Some(path.as_path()));
    assert_eq!(
        e.to_string(),
        format!(
            "{}:8: bgp.port: port 0 is not a TCP port to listen on or connect to",
            path.display()
        )
    );

    std::fs::write(&path, format!("{MINIMAL}prot = 1\n")).unwrap();
    let e = Config::from_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:7: interface[0]: unknown field `prot`, expected `name` or `mtu`",
            path.display()
        )
    );

    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(Config::from_file(&path).unwrap(), parse(MINIMAL).unwrap());

    let missing = dir.join("missing.toml");
    let e = Config::from_file(&missing).unwrap_err();
    assert!(matches!(e.errors(), [ConfigError::Read { .. }]));
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duplicate_aggregates() {
    let e = error_with("[bgp]\naggregates = [\"2001:db8::/32\", \"2001:db8:0::/32\"]\n");
    assert!(matches!(e, ConfigError::DuplicateAggregate { .. }));
    assert_eq!(
        e.to_string(),
        "bgp.aggregates[1]: 2001:db8::/32 is already configured at bgp.aggregates[0]; originate each prefix once"
    );
    let e = error_with(
        "[bgp]\naggregates = [\"2001:db8::/32\"]\n[[route]]\nprefix = \"2001:db8::/32\"\nvia = [\"2001:db8:ffff::1\"]\n",
    );
    assert!(matches!(e, ConfigError::DuplicateAggregate { .. }));
    assert_eq!(at(&e), ("route[0].prefix", Some(10)));
    let e = error_with("[bgp]\naggregates = [\"2001:db8::/320\"]\n");
    assert!(matches!(e, ConfigError::NotIpv6Prefix { .. }));
    assert_eq!(at(&e), ("bgp.aggregates[0]", Some(8)));
}

#[test]
fn prefixes_that_are_never_routed_are_refused() {
    for (table, key, bad) in [
        (
            "[[route]]\nvia = [\"2001:db8::1\"]\nprefix = ",
            "route[0].prefix",
            "ff00::/8",
        ),
        (
            "[[route]]\nvia = [\"2001:db8::1\"]\nprefix = ",
            "route[0].prefix",
            "fe80::/64",
        ),
        (
            "[[route]]\nvia = [\"2001:db8::1\"]\nprefix = ",
            "route[0].prefix",
            "::1/128",
        ),
        ("[bgp]\naggregates = [", "bgp.aggregates[0]", "ff02::/16"),
        ("[bgp]\naggregates = [", "bgp.aggregates[0]", "::/128"),
        (
            "[[bgp.listen]]\npeer-asn = 65001\nrange = ",
            "bgp.listen[0].range",
            "fe80::/10",
        ),
        (
            "[[bgp.listen]]\npeer-asn = 65001\nrange = ",
            "bgp.listen[0].range",
            "::ffff:10.0.0.0/104",
        ),
        (
            "[bgp]\naggregates = [",
            "bgp.aggregates[0]",
            "::ffff:0:0/96",
        ),
    ] {
        let close = if table.ends_with('[') { "]" } else { "" };
        let text = format!("{MINIMAL}{table}\"{bad}\"{close}\n");
        let e = only_error(&text);
        assert!(matches!(e, ConfigError::NotRoutable { .. }), "{bad}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(key) && msg.contains("never routed"), "{msg}");
    }
    // What covers them (the default route) and what they merely start
    // with are fine.
    let ok = format!(
        "{MINIMAL}[[route]]\nprefix = \"::/0\"\nvia = [\"2001:db8::1\"]\n\
         [[route]]\nprefix = \"fec0::/10\"\nvia = [\"2001:db8::1\"]\n"
    );
    parse(&ok).unwrap();
}

#[test]
fn metrics_port_zero_and_long_socket_paths_are_refused() {
    let e = only_error(&format!("{MINIMAL}[metrics]\nlisten = \"[::1]:0\"\n"));
    assert!(matches!(e, ConfigError::PortZero { .. }), "{e:?}");
    assert!(e.to_string().contains("metrics.listen"), "{e}");
    let long = format!("/run/{}.sock", "x".repeat(110));
    let e = only_error(&format!("{MINIMAL}[ctl]\nsocket = \"{long}\"\n"));
    assert!(
        matches!(
            e,
            ConfigError::SocketPathLength {
                len: 120,
                max: 107,
                ..
            }
        ),
        "{e:?}"
    );
    let fits = format!("/run/{}.sock", "x".repeat(97));
    assert_eq!(fits.len(), 107);
    parse(&format!("{MINIMAL}[ctl]\nsocket = \"{fits}\"\n")).unwrap();
}

#[test]
fn max_prefixes_idle_time_zero() {
    let e = error_with(
        "[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-asn = 1\nimport = []\n\
         max-prefixes = 10\nmax-prefixes-idle-time = 0\n",
    );
    assert!(
        matches!(e, ConfigError::MaxPrefixesIdleZero { .. }),
        "{e:?}"
    );
    assert_eq!(at(&e), ("bgp.listen[0].max-prefixes-idle-time", Some(12)));
    let c = parse(&format!(
        "{MINIMAL}[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-asn = 1\n\
         max-prefixes-idle-time = 1\n"
    ))
    .unwrap();
    assert_eq!(
        c.bgp.listen[0].session.max_prefixes_idle_time,
        Duration::from_secs(1)
    );
}

#[test]
fn a_single_bracket_table_where_a_list_belongs() {
    for (text, key) in [
        (
            "[router]\nasn = 65000\nrouter-id = \"192.0.2.1\"\n[interface]\nname = \"up0\"\n",
            "interface",
        ),
        (
            &*format!("{MINIMAL}[bgp.listen]\nrange = \"2001:db8::/64\"\npeer-asn = 1\n"),
            "bgp.listen",
        ),
    ] {
        let e = only_error(text);
        let msg = e.to_string();
        assert!(msg.contains("two brackets, [[...]]"), "{msg}");
        assert!(msg.contains(key), "{msg}");
    }
    // A table where a list of strings belongs is no such case.
    let e = error_with(
        "[[bgp.listen]]\nrange = \"2001:db8::/64\"\npeer-asn = 1\n[bgp.listen.import]\na = 1\n",
    );
    assert!(!e.to_string().contains("[[...]]"), "{e}");
}
