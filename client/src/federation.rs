//! What a phone shows of its server's link to other camps over IP: "🔗 Linked to 2 camps
//! (Camp B, Hill clinic) · synced 4 min ago".

use mesh::FederationStatus;

/// Camp names shown before "and N more".
const NAMED: usize = 3;

/// The federation line: whether the link works now, and what it says. `now_ms` is this
/// device's clock; a sync "in the future" (the server's clock ahead) reads as now.
pub fn line(status: &FederationStatus, now_ms: u64) -> (bool, String) {
    let synced = match status.last_synced_ms {
        Some(at) => match mesh::geo::format_age(now_ms.saturating_sub(at)).as_str() {
            "now" => "synced just now".to_string(),
            age => format!("last synced {age}"),
        },
        None => "not synced yet".to_string(),
    };
    if let Some(problem) = &status.problem {
        return (false, format!("Not linked: {problem} · {synced}"));
    }
    let camps = match status.camps.as_slice() {
        [] => "Linked, no other camp heard yet".to_string(),
        [one] => format!("Linked to 1 camp ({one})"),
        names => {
            let shown = names[..names.len().min(NAMED)].join(", ");
            let more = names.len().saturating_sub(NAMED);
            let tail = if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            };
            format!("Linked to {} camps ({shown}{tail})", names.len())
        }
    };
    (true, format!("{camps} · {synced}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(camps: &[&str], synced: Option<u64>, problem: Option<&str>) -> FederationStatus {
        FederationStatus {
            camps: camps.iter().map(|c| c.to_string()).collect(),
            last_synced_ms: synced,
            problem: problem.map(str::to_string),
        }
    }

    #[test]
    fn the_line_names_the_camps_and_how_long_ago_it_synced() {
        let now = 1_800_000_000_000;
        assert_eq!(
            line(
                &status(&["Camp B", "Hill clinic"], Some(now - 4 * 60_000), None),
                now
            ),
            (
                true,
                "Linked to 2 camps (Camp B, Hill clinic) · last synced 4 min ago".into()
            )
        );
        assert_eq!(
            line(&status(&["Camp B"], Some(now + 5_000), None), now),
            (true, "Linked to 1 camp (Camp B) · synced just now".into())
        );
        assert_eq!(
            line(&status(&["A", "B", "C", "D", "E"], Some(now), None), now).1,
            "Linked to 5 camps (A, B, C, and 2 more) · synced just now"
        );
        assert_eq!(
            line(&status(&[], None, None), now).1,
            "Linked, no other camp heard yet · not synced yet"
        );
        assert_eq!(
            line(
                &status(
                    &["Camp B"],
                    Some(now - 2 * 3_600_000),
                    Some("the hub is not reachable")
                ),
                now
            ),
            (
                false,
                "Not linked: the hub is not reachable · last synced 2 h ago".into()
            )
        );
    }
}
