package clickhouse

import (
	"context"
	"fmt"
	"time"
)

// Emitted returns, for each window_start (unix seconds) at or after since,
// the highest through_offset written for source partition partition. The
// aggregator uses it after a restart or rebalance to skip events that a
// window already contains.
func (s *Store) Emitted(ctx context.Context, partition int32, since time.Time) (map[int64]int64, error) {
	rows, err := s.conn.Query(ctx, `SELECT toUInt32(window_start), max(through_offset)
FROM `+TableWindows+`
WHERE src_partition = toUInt32(?) AND window_start >= toDateTime(?)
GROUP BY window_start`, int64(partition), since.Unix())
	if err != nil {
		return nil, fmt.Errorf("reading emitted windows of partition %d since %s: %w", partition, since.UTC().Format(time.RFC3339), err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var start uint32
		var through int64
		if err := rows.Scan(&start, &through); err != nil {
			return nil, fmt.Errorf("reading emitted windows of partition %d: %w", partition, err)
		}
		out[int64(start)] = through
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading emitted windows of partition %d: %w", partition, err)
	}
	return out, nil
}
