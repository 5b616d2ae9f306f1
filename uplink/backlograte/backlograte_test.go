package backlograte

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	u := New(0)
	if u.Limited() || !u.Take() || u.Available() < 1000 {
		t.Fatal("rate 0 must be unlimited")
	}
	l := New(20)
	n := 0
	for l.Take() {
		n++
	}
	if n != 20 {
		t.Fatalf("burst of %d, want one second's worth (20)", n)
	}
	if w := l.Wait(); w < 10*time.Millisecond || w > 60*time.Millisecond {
		t.Fatalf("wait %s for the next of 20/s", w)
	}
	start := time.Now()
	for sent := 0; sent < 10; {
		if l.Take() {
			sent++
		} else {
			time.Sleep(l.Wait())
		}
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("10 more messages at 20/s took %s", el)
	}
}
