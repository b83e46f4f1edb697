use super::*;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Parses `line` (words after `flatedgectl`) with an explicit socket, so
/// the tests do not depend on `FLATEDGE_CTL_SOCKET`.
fn parse(line: &str) -> Result<Cli, clap::Error> {
    Cli::try_parse_with_usage(
        ["flatedgectl", "--socket", "/tmp/test.sock"]
            .into_iter()
            .chain(line.split_whitespace()),
    )
}

#[track_caller]
fn request(line: &str) -> Request {
    match parse(line) {
        Ok(cli) => cli.request(),
        Err(e) => panic!("{line:?}: {e}"),
    }
}

#[test]
fn every_command_maps_to_its_request() {
    let cases = [
        ("show bgp summary", Request::ShowBgpSummary),
        ("show route", Request::ShowRoute { prefix: None }),
        (
            "show route 2001:db8:100::/56",
            Request::ShowRoute {
                prefix: Some("2001:db8:100::/56".parse().unwrap()),
            },
        ),
        (
            "show fib 2001:db8:100::1",
            Request::ShowFib {
                address: a("2001:db8:100::1"),
            },
        ),
        ("show fib summary", Request::ShowFibSummary),
        ("show neighbors", Request::ShowNeighbors),
        ("show interfaces", Request::ShowInterfaces),
        ("show drops", Request::ShowDrops),
        ("show runtime", Request::ShowRuntime),
        (
            "neighbor 2001:db8:1::11 reset",
            Request::Neighbor {
                address: a("2001:db8:1::11"),
                action: NeighborAction::Reset,
            },
        ),
        (
            "neighbor 2001:db8:1::11 disable",
            Request::Neighbor {
                address: a("2001:db8:1::11"),
                action: NeighborAction::Disable,
            },
        ),
        (
            "neighbor 2001:db8:1::11 enable",
            Request::Neighbor {
                address: a("2001:db8:1::11"),
                action: NeighborAction::Enable,
            },
        ),
        // Unique prefixes, as for the command words.
        (
            "nei 2001:db8:1::11 dis",
            Request::Neighbor {
                address: a("2001:db8:1::11"),
                action: NeighborAction::Disable,
            },
        ),
        (
            "neighbor 2001:db8:1::11 r",
            Request::Neighbor {
                address: a("2001:db8:1::11"),
                action: NeighborAction::Reset,
            },
        ),
        ("reload", Request::Reload),
    ];
    for (line, expected) in cases {
        assert_eq!(request(line), expected, "{line}");
    }
}

#[test]
fn unique_prefixes_and_spellings() {
    let cases = [
        ("sh bgp sum", Request::ShowBgpSummary),
        ("s b s", Request::ShowBgpSummary),
        ("sh ro", Request::ShowRoute { prefix: None }),
        ("sh fib sum", Request::ShowFibSummary),
        ("sh fib s", Request::ShowFibSummary),
        ("sh nei", Request::ShowNeighbors),
        ("show neighbours", Request::ShowNeighbors),
        ("sh int", Request::ShowInterfaces),
        ("sh dr", Request::ShowDrops),
        ("sh ru", Request::ShowRuntime),
        ("rel", Request::Reload),
        (
            "neighbour 2001:db8::1 enable",
            Request::Neighbor {
                address: a("2001:db8::1"),
                action: NeighborAction::Enable,
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(request(line), expected, "{line}");
    }
}

#[test]
fn fib_addresses_that_look_like_words_are_addresses() {
    // Hex-only addresses are never prefixes of "summary".
    assert_eq!(
        request("show fib ::1"),
        Request::ShowFib { address: a("::1") }
    );
    assert_eq!(
        request("show fib fd00::"),
        Request::ShowFib {
            address: a("fd00::")
        }
    );
}

#[test]
fn show_route_clears_host_bits() {
    assert_eq!(
        request("show route 2001:db8:100::1/56"),
        Request::ShowRoute {
            prefix: Some("2001:db8:100::/56".parse().unwrap()),
        }
    );
}

#[test]
fn show_route_points_an_address_at_show_fib() {
    let e = parse("show route 2001:db8::1").unwrap_err().to_string();
    assert!(
        e.contains("is an address, not a prefix") && e.contains("show fib 2001:db8::1"),
        "{e}"
    );
    let e = parse("show route 10.0.0.0/8").unwrap_err().to_string();
    assert!(e.contains("not an IPv6 prefix"), "{e}");
}

#[test]
fn options() {
    let cli = parse("--json show drops").unwrap();
    assert!(cli.json);
    assert_eq!(cli.socket, PathBuf::from("/tmp/test.sock"));
    assert_eq!(cli.timeout(), Duration::from_secs(10));

    // Global options may follow the command.
    // reload waits for BGP: a longer default, unless one is given.
    assert_eq!(parse("reload").unwrap().timeout(), Duration::from_secs(70));
    assert_eq!(
        parse("--timeout 3 reload").unwrap().timeout(),
        Duration::from_secs(3)
    );
    let cli = parse("show drops --json --timeout 0.5").unwrap();
    assert!(cli.json);
    assert_eq!(cli.timeout(), Duration::from_millis(500));
    let cli = parse("show drops --socket /run/other.sock").unwrap();
    assert_eq!(cli.socket, PathBuf::from("/run/other.sock"));
    assert!(!cli.json);
}

#[test]
fn bad_command_lines_are_usage_errors() {
    for line in [
        "",
        "show",
        "frobnicate",
        "show everything",
        "show bgp",
        "show bgp neighbors",
        "show fib",
        "show fib 192.0.2.1",
        "show fib 2001:db8::1 extra",
        "show fib summaryx",
        "show route 2001:db8::/129",
        "show route 192.0.2.0/24",
        "show route 2001:db8::1",
        "show r",
        "neighbor",
        "neighbor 2001:db8::1",
        "neighbor 192.0.2.1 reset",
        "neighbor 2001:db8::1 bounce",
        "neighbor 2001:db8::1 disablex",
        "neighbor reset 2001:db8::1",
        "reload now",
        "--timeout 0 reload",
        "--timeout -1 reload",
        "--timeout soon reload",
        "--bogus reload",
    ] {
        let Err(e) = parse(line) else {
            panic!("{line:?} parsed");
        };
        assert_eq!(e.exit_code(), 2, "{line:?}: {e}");
    }
}

#[test]
fn bad_values_come_with_the_usage_of_their_command() {
    let e = parse("show fib 192.0.2.1").unwrap_err();
    let text = e.render().to_string();
    assert!(
        text.contains("\"192.0.2.1\" is neither an IPv6 address nor \"summary\""),
        "{text}"
    );
    assert!(
        text.contains("Usage: flatedgectl show fib [OPTIONS] <ADDRESS|summary>"),
        "{text}"
    );

    let e = parse("nei 2001:db8::1 bounce").unwrap_err();
    let text = e.render().to_string();
    assert!(
        text.contains("Usage: flatedgectl neighbor [OPTIONS] <ADDRESS> <ACTION>"),
        "{text}"
    );
}

#[test]
fn help_and_version_are_not_errors() {
    for line in ["--help", "show --help", "help show fib", "--version"] {
        let e = parse(line).unwrap_err();
        assert_eq!(e.exit_code(), 0, "{line}");
    }
}
