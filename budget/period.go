package budget

import "time"

// PeriodBounds returns the calendar period of the given kind holding t,
// from midnight in loc: days, weeks from Monday, months, quarters from
// January, April, July and October, and years. End is exclusive. Daylight
// saving changes make such periods 23 or 25 hours longer or shorter, as a
// calendar does.
func PeriodBounds(period string, loc *time.Location, t time.Time) (start, end time.Time) {
	l := t.In(loc)
	y, m, d := l.Date()
	switch period {
	case Daily:
		start = time.Date(y, m, d, 0, 0, 0, 0, loc)
		end = start.AddDate(0, 0, 1)
	case Weekly:
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(y, m, d-back, 0, 0, 0, 0, loc)
		end = start.AddDate(0, 0, 7)
	case Quarterly:
		start = time.Date(y, m-(m-1)%3, 1, 0, 0, 0, 0, loc)
		end = start.AddDate(0, 3, 0)
	case Annual:
		start = time.Date(y, 1, 1, 0, 0, 0, 0, loc)
		end = start.AddDate(1, 0, 0)
	default: // Monthly
		start = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		end = start.AddDate(0, 1, 0)
	}
	return start, end
}
