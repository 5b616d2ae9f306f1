package uplink

import "github.com/hazwatch/edgecollector/edge"

// Store is what an uplink needs of the buffer (buffer.Badger and
// buffer.Memory implement it).
type Store interface {
	// Unacked returns up to max messages with from <= seq < to (to == 0:
	// no bound) that uplink has not acknowledged, oldest first.
	Unacked(uplink string, from, to uint64, max int) ([]*edge.Message, error)
	// Ack records that uplink's platform has these messages.
	Ack(uplink string, seqs ...uint64) error
	// LastSeq is the highest seq assigned so far.
	LastSeq() uint64
	// Appended returns a channel closed at the next append.
	Appended() <-chan struct{}
	// Rescan returns a channel closed when unacknowledged messages may have
	// appeared below seqs an uplink already read past: the database opened
	// after a degraded start, or recovered. Every uplink then reads its
	// backlog again from the lowest unacknowledged seq.
	Rescan() <-chan struct{}
}

// Outcome is what became of a message a transport was asked to send.
type Outcome int

const (
	// Done: nothing to wait for; the seq is acknowledged at once (nothing
	// of it goes to this platform, or it was written with confirmations
	// off).
	Done Outcome = iota
	// Await: written; the platform's confirmation (Delivery.Confirm) is
	// awaited, within Opts.Timeout of the write.
	Await
	// HandOver: written; first the transport's hand-over is awaited
	// (Delivery.Handed, e.g. the broker's PUBACK), then the platform's
	// confirmation within Opts.Timeout of the hand-over.
	HandOver
	// Keep: not written (it cannot be encoded); it stays unacknowledged in
	// the buffer for a later connection.
	Keep
)

// Sent is what a transport did with one message.
type Sent struct {
	Outcome Outcome
	// Packets is how many frames or publishes were written (0: none).
	Packets int
}

// SendFunc writes m to the platform, marked as a resend when resend is set.
// It is called again, with resend set, for a seq awaiting confirmation whose
// timeout ran out: the transport may then send only what of it is still
// unanswered. An error ends the connection.
type SendFunc func(m *edge.Message, resend bool) (Sent, error)
