package aggregate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A replica writes a flush only while it is the group member that owns the
// flush's partitions. One that was paused (a long GC pause, a frozen VM, a
// throttled container, SIGSTOP) or cut off from the broker for longer than
// its session, or that held a rebalance up for longer than the rebalance
// timeout, has had its partitions given to another replica, which re-read
// them from the committed offsets and counted their events again. Its own
// unwritten windows would then count them twice: so before each write
// attempt the replica asks the group coordinator, with a heartbeat of its
// own, whether it is still the member of the current generation, and the
// attempt must finish while the group cannot have moved on without it.

// errFenced says the replica is no longer the group member that owns its
// partitions: what it has not written belongs to their new owners.
var errFenced = errors.New("this replica is no longer the group member that owns its partitions")

// errUnconfirmed says the replica could not confirm its membership in time
// to write; the write is held and tried again.
var errUnconfirmed = errors.New("could not confirm this replica's group membership before writing")

// rebalanceTimeout is how long the group waits for a member to rejoin once
// a rebalance has begun (franz-go's default, which the stage keeps). The
// broker uses the largest of its members', so this is a lower bound.
const rebalanceTimeout = 60 * time.Second

// membership confirms, before a write, that the replica still owns its
// partitions, and until when a write may land.
type membership struct {
	cl         *kgo.Client
	group      string
	instanceID *string
	session    time.Duration
	now        func() time.Time
	// stableAt is when the last confirmation was sent that the group
	// answered as stable: a rebalance began after it, so the group cannot
	// give the partitions away without this member before
	// stableAt + rebalanceTimeout.
	stableAt time.Time
}

// confirm asks the coordinator whether this member is still in the
// current generation. It returns the time by which a write started now
// must have landed, errFenced when the group has moved on without the
// member, or errUnconfirmed (wrapping the cause) when it cannot tell.
func (m *membership) confirm(ctx context.Context) (time.Time, error) {
	member, generation := m.cl.GroupMetadata()
	if member == "" || generation < 0 {
		return time.Time{}, fmt.Errorf("%w: the client is not in group %s", errFenced, m.group)
	}
	sent := m.now()
	// The coordinator answers at once; a broker that does not answer
	// within a third of the session leaves too little of it to write in.
	hctx, cancel := context.WithTimeout(ctx, m.session/3)
	defer cancel()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.Generation, req.MemberID, req.InstanceID = m.group, generation, member, m.instanceID
	resp, err := req.RequestWith(hctx, m.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	switch {
	case err == nil:
		m.stableAt = sent
	case errors.Is(err, kerr.RebalanceInProgress):
		// Still the member of the current generation; the partitions
		// stay this member's until it rejoins or the rebalance times
		// out.
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.FencedInstanceID):
		return time.Time{}, fmt.Errorf("%w: the coordinator of group %s answered %v for member %s of generation %d",
			errFenced, m.group, err, member, generation)
	default:
		return time.Time{}, fmt.Errorf("%w: heartbeat to the coordinator of group %s: %w", errUnconfirmed, m.group, err)
	}
	// The session runs from when the coordinator took the heartbeat,
	// after sent; a rebalance from after stableAt.
	until := sent.Add(m.session)
	if by := m.stableAt.Add(rebalanceTimeout); by.Before(until) {
		until = by
	}
	until = until.Add(-max(time.Second, m.session/10))
	if left := until.Sub(m.now()); left < time.Second {
		return time.Time{}, fmt.Errorf("%w: group %s has been rebalancing since before %s and could assign this member's partitions elsewhere within %s",
			errUnconfirmed, m.group, m.stableAt.UTC().Format(time.RFC3339), left.Round(time.Millisecond))
	}
	return until, nil
}
