package buffer

import "sync"

// rescanSignal tells the uplinks that unacknowledged messages may have
// appeared below seqs they already read past (the database opened after a
// degraded start, or recovered): each then reads its backlog again from the
// lowest unacknowledged seq.
type rescanSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Rescan returns a channel closed at the next such event.
func (r *rescanSignal) Rescan() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch == nil {
		r.ch = make(chan struct{})
	}
	return r.ch
}

func (r *rescanSignal) signalRescan() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch != nil {
		close(r.ch)
	}
	r.ch = make(chan struct{})
}
