//! Weekly opening hours, compiled to one bit per minute of the week.

use crate::decision::{LocalTime, Weekday};

/// Minutes in a day.
pub(crate) const MINUTES_PER_DAY: u32 = 24 * 60;
/// Minutes in a week.
pub(crate) const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY;
const WORDS: usize = MINUTES_PER_WEEK.div_ceil(64) as usize;

/// The epoch (1970-01-01) was a Thursday; Monday is day 0 of our week.
const EPOCH_MINUTE_OF_WEEK: i64 = 3 * MINUTES_PER_DAY as i64;

/// The set of open minutes of a week, Monday 00:00 being minute 0.
///
/// A bitmap (1,260 bytes) makes the check at decision time one load, whatever the number of
/// ranges, and makes ranges that overlap or run past midnight need no special case.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WeekMask {
    bits: Box<[u64; WORDS]>,
}

impl std::fmt::Debug for WeekMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.bits.iter().map(|w| w.count_ones()).sum::<u32>();
        write!(f, "WeekMask({open} open minutes)")
    }
}

impl WeekMask {
    pub(crate) fn new() -> Self {
        WeekMask {
            bits: Box::new([0; WORDS]),
        }
    }

    /// Opens `start..end` minutes of the week; `end` may pass the week's end, which wraps to
    /// Monday (Sunday's overnight range).
    pub(crate) fn open(&mut self, start: u32, end: u32) {
        for minute in start..end {
            let minute = minute % MINUTES_PER_WEEK;
            if let Some(word) = self.bits.get_mut((minute / 64) as usize) {
                *word |= 1 << (minute % 64);
            }
        }
    }

    pub(crate) fn is_open(&self, minute_of_week: u32) -> bool {
        self.bits
            .get((minute_of_week / 64) as usize)
            .is_some_and(|word| (word >> (minute_of_week % 64)) & 1 == 1)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }
}

/// Parses `HH:MM` (two digits each, `24:00` allowed) into minutes since midnight.
pub(crate) fn parse_clock(text: &str) -> Option<u32> {
    let &[h1, h2, b':', m1, m2] = text.as_bytes() else {
        return None;
    };
    let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    let hours = digit(h1)? * 10 + digit(h2)?;
    let minutes = digit(m1)? * 10 + digit(m2)?;
    if minutes > 59 || hours > 24 || (hours == 24 && minutes != 0) {
        return None;
    }
    Some(hours * 60 + minutes)
}

/// Parses `HH:MM-HH:MM` into start and end minutes of the day. An end before the start means the
/// range runs into the next day; the caller adds a day to it.
pub(crate) fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let format = || format!("{text:?} is not a time range like \"09:00-18:00\"");
    let (start, end) = text.split_once('-').ok_or_else(format)?;
    let start = parse_clock(start).ok_or_else(format)?;
    let end = parse_clock(end).ok_or_else(format)?;
    if start == MINUTES_PER_DAY {
        return Err(format!(
            "{text:?} starts at 24:00; start at 00:00 of the next day instead"
        ));
    }
    if start == end {
        return Err(format!("{text:?} is empty; use \"00:00-24:00\" for the whole day"));
    }
    Ok((start, end))
}

/// The minute of the week (Monday 00:00 = 0) at `now` seconds since the epoch, in local time
/// `offset_minutes` ahead of UTC. Defined for every `now`.
pub(crate) fn minute_of_week(now: i64, offset_minutes: i32) -> u32 {
    // div_euclid first keeps the sum far from overflow for any i64 and any i32 offset.
    let minutes = now.div_euclid(60) + i64::from(offset_minutes) + EPOCH_MINUTE_OF_WEEK;
    u32::try_from(minutes.rem_euclid(i64::from(MINUTES_PER_WEEK))).unwrap_or(0)
}

/// The local weekday and time of a minute of the week.
pub(crate) fn local_time(minute_of_week: u32) -> LocalTime {
    let day = (minute_of_week / MINUTES_PER_DAY) as usize;
    LocalTime {
        weekday: Weekday::ALL.get(day).copied().unwrap_or(Weekday::Mon),
        minute_of_day: u16::try_from(minute_of_week % MINUTES_PER_DAY).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_parsing_is_strict() {
        assert_eq!(parse_clock("00:00"), Some(0));
        assert_eq!(parse_clock("09:30"), Some(570));
        assert_eq!(parse_clock("24:00"), Some(1440));
        for bad in [
            "24:01",
            "25:00",
            "9:00",
            "09:60",
            "0900",
            "09:0a",
            "０９:００",
            "",
            "09:00 ",
        ] {
            assert_eq!(parse_clock(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("09:00-18:00"), Ok((540, 1080)));
        assert_eq!(parse_range("22:00-02:00"), Ok((1320, 120)));
        assert_eq!(parse_range("00:00-24:00"), Ok((0, 1440)));
        assert!(parse_range("10:00-10:00").is_err());
        assert!(parse_range("24:00-01:00").is_err());
        assert!(parse_range("09:00–18:00").is_err());
        assert!(parse_range("09:00").is_err());
    }

    #[test]
    fn minute_of_week_matches_the_calendar() {
        // 2025-01-31 is a Friday; 09:30 UTC.
        let fri_0930_utc = 1_738_315_800;
        assert_eq!(local_time(minute_of_week(fri_0930_utc, 0)).to_string(), "fri 09:30");
        assert_eq!(local_time(minute_of_week(fri_0930_utc, 480)).to_string(), "fri 17:30");
        assert_eq!(local_time(minute_of_week(fri_0930_utc, 900)).to_string(), "sat 00:30");
        assert_eq!(local_time(minute_of_week(fri_0930_utc, -600)).to_string(), "thu 23:30");
        assert_eq!(local_time(minute_of_week(0, 0)).to_string(), "thu 00:00");
        assert_eq!(local_time(minute_of_week(-1, 0)).to_string(), "wed 23:59");
        for now in [i64::MIN, i64::MAX, i64::MIN + 1] {
            for offset in [i32::MIN, -720, 0, 840, i32::MAX] {
                assert!(minute_of_week(now, offset) < MINUTES_PER_WEEK);
            }
        }
    }

    #[test]
    fn mask_wraps_sunday_into_monday() {
        let mut mask = WeekMask::new();
        assert!(mask.is_empty());
        mask.open(6 * MINUTES_PER_DAY + 1320, 7 * MINUTES_PER_DAY + 120);
        assert!(mask.is_open(6 * MINUTES_PER_DAY + 1439));
        assert!(mask.is_open(0));
        assert!(mask.is_open(119));
        assert!(!mask.is_open(120));
        assert!(!mask.is_open(6 * MINUTES_PER_DAY + 1319));
        assert!(!mask.is_open(MINUTES_PER_WEEK));
    }
}
