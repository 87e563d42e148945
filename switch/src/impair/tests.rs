use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sends(f: Fate) -> (Duration, bool, Option<usize>) {
    match f {
        Fate::Send {
            at,
            duplicate,
            corrupt_bit,
        } => (at, duplicate, corrupt_bit),
        Fate::Drop(why) => panic!("dropped: {why:?}"),
    }
}

#[test]
fn nothing_changes_nothing() {
    let spec = ImpairSpec {
        seed: 7,
        ..ImpairSpec::default()
    };
    assert!(spec.is_none());
    let mut imp = Impairment::new(spec);
    for i in 0..1000 {
        assert_eq!(sends(imp.on_frame(ms(i), 1500)), (ms(i), false, None));
    }
    assert!(!ImpairSpec {
        delay: ms(1),
        ..spec
    }
    .is_none());
}

#[test]
fn delay_and_jitter_stay_in_bounds_and_vary() {
    let mut imp = Impairment::new(ImpairSpec {
        delay: ms(20),
        jitter: ms(5),
        seed: 1,
        ..ImpairSpec::default()
    });
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10_000 {
        let (at, _, _) = sends(imp.on_frame(ms(100), 64));
        assert!((ms(115)..=ms(125)).contains(&at), "{at:?}");
        seen.insert(at);
    }
    assert!(
        seen.len() > 1000,
        "jitter varies the delay: {} values",
        seen.len()
    );
    // Jitter larger than the delay never sends before now.
    let mut imp = Impairment::new(ImpairSpec {
        delay: ms(1),
        jitter: ms(50),
        seed: 2,
        ..ImpairSpec::default()
    });
    for _ in 0..1000 {
        assert!(sends(imp.on_frame(ms(10), 64)).0 >= ms(10));
    }
}

#[test]
fn loss_is_near_its_rate_and_the_same_for_a_seed() {
    let spec = ImpairSpec {
        loss_ppm: parse_percent("--loss", "10%").unwrap(),
        seed: 42,
        ..ImpairSpec::default()
    };
    let run = |spec| {
        let mut imp = Impairment::new(spec);
        (0..100_000)
            .map(|i| matches!(imp.on_frame(ms(i), 100), Fate::Drop(ImpairDrop::Loss)))
            .collect::<Vec<bool>>()
    };
    let a = run(spec);
    let lost = a.iter().filter(|l| **l).count();
    // 10% of 100 000: the standard deviation is about 95.
    assert!((9_500..=10_500).contains(&lost), "{lost} lost");
    assert_eq!(a, run(spec), "a seed gives the same drops");
    assert_ne!(
        a,
        run(ImpairSpec { seed: 43, ..spec }),
        "another seed does not"
    );
}

#[test]
fn duplicate_and_corrupt_at_their_rates() {
    let mut imp = Impairment::new(ImpairSpec {
        duplicate_ppm: 250_000,
        corrupt_ppm: 500_000,
        seed: 3,
        ..ImpairSpec::default()
    });
    let (mut dup, mut bad) = (0, 0);
    for i in 0..100_000 {
        let (_, d, c) = sends(imp.on_frame(ms(i), 60));
        dup += usize::from(d);
        if let Some(bit) = c {
            assert!(bit < 60 * 8);
            bad += 1;
        }
    }
    assert!((24_000..=26_000).contains(&dup), "{dup} duplicated");
    assert!((49_000..=51_000).contains(&bad), "{bad} corrupted");
    // An empty frame has no bit to flip.
    let mut imp = Impairment::new(ImpairSpec {
        corrupt_ppm: PPM,
        ..ImpairSpec::default()
    });
    assert_eq!(sends(imp.on_frame(ms(0), 0)).2, None);
}

#[test]
fn reordered_frames_skip_the_delay() {
    let mut imp = Impairment::new(ImpairSpec {
        delay: ms(50),
        reorder_ppm: 300_000,
        seed: 9,
        ..ImpairSpec::default()
    });
    let times: Vec<Duration> = (0..10_000)
        .map(|i| sends(imp.on_frame(ms(i), 64)).0)
        .collect();
    let early = times
        .iter()
        .enumerate()
        .filter(|(i, t)| **t == ms(*i as u64))
        .count();
    assert!((2_800..=3_200).contains(&early), "{early} reordered");
    // A reordered frame overtakes the delayed one sent just before it.
    assert!(times.windows(2).any(|w| w[1] < w[0]));
}

#[test]
fn the_rate_spaces_frames_and_bounds_the_backlog() {
    let mut imp = Impairment::new(ImpairSpec {
        rate_bps: parse_rate("10mbit").unwrap(),
        ..ImpairSpec::default()
    });
    // 1250 octets = 10 000 bits = 1 ms at 10 Mbit/s: back-to-back frames leave 1 ms apart.
    let t: Vec<Duration> = (0..5).map(|_| sends(imp.on_frame(ms(0), 1250)).0).collect();
    assert_eq!(t, [ms(1), ms(2), ms(3), ms(4), ms(5)]);
    // An idle link starts again from now.
    assert_eq!(sends(imp.on_frame(ms(100), 1250)).0, ms(101));
    // A burst fills the backlog; past MAX_BACKLOG frames are dropped.
    let mut dropped = 0;
    for _ in 0..2_000 {
        if imp.on_frame(ms(200), 1250) == Fate::Drop(ImpairDrop::Backlog) {
            dropped += 1;
        }
    }
    assert!((990..=1_000).contains(&dropped), "{dropped} dropped");
}

#[test]
fn command_line_values_parse_or_say_how_to_write_them() {
    assert_eq!(parse_time("--delay", "20ms"), Ok(ms(20)));
    assert_eq!(parse_time("--delay", "1.5s"), Ok(ms(1500)));
    assert_eq!(
        parse_time("--jitter", "300us"),
        Ok(Duration::from_micros(300))
    );
    assert_eq!(parse_percent("--loss", "0.5%"), Ok(5_000));
    assert_eq!(parse_percent("--loss", "100"), Ok(PPM));
    assert_eq!(parse_rate("512kbit"), Ok(512_000));
    assert_eq!(parse_rate("1Gbit"), Ok(1_000_000_000));
    for bad in ["", "20", "ms", "-1ms", "61s", "1e9ms", "NaNms", "20 ms"] {
        let e = parse_time("--delay", bad).unwrap_err().to_string();
        assert!(e.contains("--delay") && e.contains("20ms"), "{bad:?}: {e}");
    }
    for bad in ["101%", "-1%", "x", "inf"] {
        assert!(parse_percent("--loss", bad).is_err(), "{bad:?}");
    }
    for bad in ["10", "10mb", "1bit", "0mbit", "infmbit"] {
        let e = parse_rate(bad).unwrap_err().to_string();
        assert!(e.contains("10mbit"), "{bad:?}: {e}");
    }
}

#[test]
fn extreme_specs_saturate_instead_of_panicking() {
    let mut imp = Impairment::new(ImpairSpec {
        delay: Duration::MAX,
        jitter: Duration::MAX,
        rate_bps: 1,
        loss_ppm: u32::MAX,
        ..ImpairSpec::default()
    });
    // loss above 100% drops everything.
    assert_eq!(imp.on_frame(ms(0), 1500), Fate::Drop(ImpairDrop::Loss));
    let mut imp = Impairment::new(ImpairSpec {
        delay: Duration::MAX,
        jitter: Duration::MAX,
        rate_bps: 1,
        ..ImpairSpec::default()
    });
    let _ = imp.on_frame(Duration::MAX, usize::MAX);
    let _ = imp.on_frame(Duration::MAX, usize::MAX);
}

#[test]
fn formatted_values_parse_back_to_themselves() {
    for us in [
        0u64, 300, 1_000, 1_500, 20_000, 999_999, 1_000_000, 1_500_000, 60_000_000,
    ] {
        let d = Duration::from_micros(us);
        assert_eq!(parse_time("--delay", &format_time(d)), Ok(d), "{us}us");
    }
    assert_eq!(format_time(ms(20)), "20ms");
    assert_eq!(format_time(Duration::from_micros(1_500_000)), "1.5s");
    for ppm in [0u32, 1, 5_000, 100_000, 333_333, PPM] {
        assert_eq!(
            parse_percent("--loss", &format_percent(ppm)),
            Ok(ppm),
            "{ppm}"
        );
    }
    assert_eq!(format_percent(100_000), "10%");
    for bps in [8_000u64, 512_000, 10_000_000, 1_500_000, 1_000_000_000] {
        assert_eq!(parse_rate(&format_rate(bps)), Ok(bps), "{bps}");
    }
    assert_eq!(format_rate(10_000_000), "10mbit");
}
