//! The parser of POSIX TZ rules (`CET-1CEST,M3.5.0,M10.5.0/3`): the form
//! of the last line of every tzfile (RFC 8536, section 3.3), read from
//! untrusted text without a panic.

use super::{Dst, RuleDate, Transition, ZoneError};

/// The most hours a transition's time may be from midnight (RFC 8536).
const MAX_TRANSITION_HOURS: i64 = 167;

/// The most hours an offset from UTC may be (POSIX).
const MAX_OFFSET_HOURS: i64 = 24;

/// The most daylight saving time may move a clock: two hours, the most
/// any zone of the tz database does (croner's search of a gap or a
/// repeated stretch gives up beyond it).
const MAX_SHIFT_SECONDS: i32 = 2 * 3600;

/// The rule's offsets east of UTC in seconds: standard time, and daylight
/// saving time with its transitions if any.
pub(super) fn parse(text: &str) -> Result<(i32, Option<Dst>), ZoneError> {
    let mut p = Parser { text, at: 0 };
    p.name()?;
    let std = -p.offset(MAX_OFFSET_HOURS, "an offset such as 5 or -1 or +05:30")?;
    if p.done() {
        return Ok((std, None));
    }
    p.name()?;
    let dst_offset = if p.peek().is_some_and(|c| c != b',') {
        -p.offset(MAX_OFFSET_HOURS, "the daylight saving offset or `,`")?
    } else {
        std + 3600
    };
    if (dst_offset - std).abs() > MAX_SHIFT_SECONDS {
        return Err(ZoneError::Shift {
            std,
            dst: dst_offset,
        });
    }
    if p.done() {
        return Err(p.error(
            "`,` and the transitions (daylight saving time needs its rule, as in EST5EDT,M3.2.0,M11.1.0)",
        ));
    }
    p.expect(b',', "`,` before the start of daylight saving time")?;
    let start = p.transition()?;
    p.expect(b',', "`,` before the end of daylight saving time")?;
    let end = p.transition()?;
    if !p.done() {
        return Err(p.error("the end of the rule"));
    }
    Ok((
        std,
        Some(Dst {
            offset: dst_offset,
            start,
            end,
        }),
    ))
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at == self.text.len()
    }

    fn error(&self, expected: &'static str) -> ZoneError {
        ZoneError::Syntax {
            at: self.at,
            expected,
        }
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), ZoneError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    /// A zone's abbreviation: three or more letters, or `<…>` around three
    /// or more letters, digits and signs.
    fn name(&mut self) -> Result<(), ZoneError> {
        let quoted = self.peek() == Some(b'<');
        self.at += usize::from(quoted);
        let start = self.at;
        while self.peek().is_some_and(|c| {
            c.is_ascii_alphabetic() || (quoted && (c.is_ascii_digit() || c == b'+' || c == b'-'))
        }) {
            self.at += 1;
        }
        if self.at - start < 3 {
            return Err(self.error("a zone abbreviation of three or more letters, or <+03>"));
        }
        if quoted {
            self.expect(b'>', "`>` closing the abbreviation")?;
        }
        Ok(())
    }

    fn number(&mut self, max: i64, expected: &'static str) -> Result<i64, ZoneError> {
        let start = self.at;
        let mut value: i64 = 0;
        while let Some(digit) = self.peek().filter(u8::is_ascii_digit) {
            value = value * 10 + i64::from(digit - b'0');
            self.at += 1;
            if value > max {
                return Err(ZoneError::OutOfRange { at: start, max });
            }
        }
        if self.at == start {
            return Err(self.error(expected));
        }
        Ok(value)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, hours at most `max_hours`.
    fn offset(&mut self, max_hours: i64, expected: &'static str) -> Result<i32, ZoneError> {
        let sign = match self.peek() {
            Some(b'-') => -1,
            _ => 1,
        };
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.at += 1;
        }
        let mut seconds = self.number(max_hours, expected)? * 3600;
        for scale in [60, 1] {
            if self.peek() != Some(b':') {
                break;
            }
            self.at += 1;
            seconds += self.number(59, "minutes or seconds, 00 to 59")? * scale;
        }
        // At most 167 h 59 min 59 s: within an i32.
        Ok((sign * seconds) as i32)
    }

    /// `Jn`, `n` or `Mm.w.d`, then an optional `/time`.
    fn transition(&mut self) -> Result<Transition, ZoneError> {
        let date = match self.peek() {
            Some(b'J') => {
                self.at += 1;
                let day = self.number(365, "a day of the year, 1 to 365")?;
                if day == 0 {
                    return Err(ZoneError::OutOfRange {
                        at: self.at - 1,
                        max: 365,
                    });
                }
                RuleDate::NoLeapDay(day as u16)
            }
            Some(b'M') => {
                self.at += 1;
                let month = self.number(12, "a month, 1 to 12")?;
                self.expect(b'.', "`.` after the month")?;
                let week = self.number(5, "a week of the month, 1 to 5 (5 is the last)")?;
                self.expect(b'.', "`.` after the week")?;
                let weekday = self.number(6, "a weekday, 0 (Sunday) to 6")?;
                if month == 0 || week == 0 {
                    return Err(self.error("a month and a week counted from 1"));
                }
                RuleDate::Weekday {
                    month: month as u8,
                    week: week as u8,
                    weekday: weekday as u8,
                }
            }
            _ => {
                RuleDate::Day(self.number(365, "Mm.w.d, Jn or a day of the year 0 to 365")? as u16)
            }
        };
        let time = if self.peek() == Some(b'/') {
            self.at += 1;
            self.offset(
                MAX_TRANSITION_HOURS,
                "a time of day such as 2 or 02:30 or -1",
            )?
        } else {
            2 * 3600
        };
        Ok(Transition { date, time })
    }
}
