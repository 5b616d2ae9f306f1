package mqtt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/internal/testpeer"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
)

// syncBuf is a log destination the test can read.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHostileAckKeepsBacklog (issue 16 item 1): in platform-ack mode one
// {"seqs":[1,…,300]} while only the first few of a 300-message backlog went
// out acknowledges only those; every other seq is still delivered later.
func TestHostileAckKeepsBacklog(t *testing.T) {
	broker := testpeer.Mosquitto(t, false)
	store := buffer.NewMemory(buffer.Opts{Uplinks: []string{"mqtt"}}, 0)
	fill(t, store, 300)
	var mu sync.Mutex
	confirm := false
	plat := newPlatform(t, broker.URL(), nil, func(p *platform, seq uint64, resend bool) {
		mu.Lock()
		ok := confirm
		mu.Unlock()
		if ok {
			b, _ := json.Marshal(jsonfmt.Ack{Seqs: []uint64{seq}})
			p.c.Publish("safety/E1/G1/ack", 1, false, b)
		}
	})
	u, err := New(Opts{URL: broker.URL(), Store: store, Encoder: encoder(), PlatformAck: true, AckTimeout: time.Minute, BacklogRate: 20})
	if err != nil {
		t.Fatal(err)
	}
	stop := runStarted(t, u)
	defer stop()
	waitUntil(t, "the first backlog messages", 10*time.Second, func() bool { return u.Stats().Sent >= 5 })
	all := make([]uint64, 300)
	for i := range all {
		all[i] = uint64(i + 1)
	}
	b, _ := json.Marshal(jsonfmt.Ack{Seqs: all})
	plat.c.Publish("safety/E1/G1/ack", 1, false, b).Wait()
	waitUntil(t, "the ack counted", 10*time.Second, func() bool { return u.Stats().AcksIgnored > 0 })
	st := u.Stats()
	depth := store.Stats().Uplinks["mqtt"].Depth
	if int(st.Acked)+int(depth) != 300 || st.Acked+st.AcksIgnored != 300 {
		t.Fatalf("after the hostile ack: %d acknowledged, %d ignored, %d left in the buffer", st.Acked, st.AcksIgnored, depth)
	}
	// An acknowledged seq is never published again: each must be one the
	// platform receives from before the hostile ack.
	var acked []uint64
	for s := uint64(1); s <= 300; s++ {
		if ms, _ := store.Unacked("mqtt", s, s+1, 1); len(ms) == 0 {
			acked = append(acked, s)
		}
	}
	waitUntil(t, fmt.Sprintf("the acknowledged seqs %v at the platform (acknowledged without being published?)", acked), 10*time.Second, func() bool {
		plat.mu.Lock()
		defer plat.mu.Unlock()
		for _, s := range acked {
			if plat.seen[s] == 0 {
				return false
			}
		}
		return true
	})
	if depth < 200 {
		t.Fatalf("only %d of 300 left: the ack erased the backlog", depth)
	}
	t.Logf("hostile ack of 300 seqs after %d publishes: %d acknowledged, %d ignored, %d left", st.Sent, st.Acked, st.AcksIgnored, depth)
	mu.Lock()
	confirm = true
	mu.Unlock()
	// What was published before and not acknowledged awaits its timeout
	// (a minute); ack it now as the platform would.
	var rest []uint64
	plat.mu.Lock()
	for s := range plat.seen {
		rest = append(rest, s)
	}
	plat.mu.Unlock()
	b, _ = json.Marshal(jsonfmt.Ack{Seqs: rest})
	plat.c.Publish("safety/E1/G1/ack", 1, false, b).Wait()
	waitUntil(t, "the whole backlog delivered", 60*time.Second, func() bool { return store.Stats().Uplinks["mqtt"].Depth == 0 })
	plat.mu.Lock()
	defer plat.mu.Unlock()
	for s := uint64(1); s <= 300; s++ {
		if plat.seen[s] == 0 {
			t.Errorf("seq %d acknowledged but never delivered", s)
		}
	}
}

// TestOversizedAck (issue 16 item 2): an acknowledgement over MaxAckBytes
// or MaxAckSeqs, or one that is not JSON, is refused whole and counted; it
// costs little more memory than the MQTT client's own read of the packet,
// and is logged in one short line. The payloads come from mosquitto_pub, so
// only the uplink's allocations are in this process.
func TestOversizedAck(t *testing.T) {
	testpeer.Need(t, "mosquitto_pub")
	broker := testpeer.Mosquitto(t, false)
	store := buffer.NewMemory(buffer.Opts{Uplinks: []string{"mqtt"}}, 0)
	fill(t, store, 3)
	logs := &syncBuf{}
	u, err := New(Opts{URL: broker.URL(), Store: store, Encoder: encoder(), PlatformAck: true, AckTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := runStarted(t, u)
	defer stop()
	waitUntil(t, "the messages published", 10*time.Second, func() bool { return u.Stats().Sent == 3 })

	seqList := func(n int) []byte {
		b := []byte(`{"seqs":[`)
		for i := range n {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(i%3+1), 10)
		}
		return append(b, "]}"...)
	}
	dir := t.TempDir()
	var base, end runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"8MB-valid-json", seqList(4 << 20)},
		{"10MB-not-json", bytes.Repeat([]byte("x"), 10<<20)},
		{"15KiB-not-json", bytes.Repeat([]byte("{"), 15<<10)},
		{"5000-seqs", seqList(5000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, tc.name)
			if err := os.WriteFile(file, tc.payload, 0o600); err != nil {
				t.Fatal(err)
			}
			size := len(tc.payload)
			tc.payload = nil
			before := u.Stats().AcksRejected
			logStart := len(logs.String())
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(broker.Port), "-q", "1",
				"-t", "safety/E1/G1/ack", "-f", file).CombinedOutput()
			if err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, out)
			}
			waitUntil(t, "the acknowledgement refused", 30*time.Second, func() bool { return u.Stats().AcksRejected == before+1 })
			runtime.ReadMemStats(&m1)
			alloc := int64(m1.TotalAlloc - m0.TotalAlloc)
			// paho reads the whole packet and copies its payload out (2 ×
			// size, see docs/uplink-format.md); beyond that, at most 2 MiB:
			// the payload is neither decoded nor logged.
			if extra := alloc - 2*int64(size); extra > 2<<20 {
				t.Errorf("a %d-byte acknowledgement allocated %d bytes, %d beyond the client's two copies of the packet", size, alloc, extra)
			}
			line := logs.String()[logStart:]
			if len(line) > 1024 || strings.Count(line, "\n") != 1 || !strings.Contains(line, "refused") {
				t.Errorf("log for a %d-byte acknowledgement: %d bytes: %.300q", size, len(line), line)
			}
			t.Logf("%d-byte acknowledgement: %d bytes allocated, log line %d bytes", size, alloc, len(line))
		})
	}
	// Once small acknowledgements followed, nothing of the big ones is
	// kept (the client holds on to its last packet until the next one).
	runtime.GC()
	runtime.ReadMemStats(&end)
	if grew := int64(end.HeapAlloc) - int64(base.HeapAlloc); grew > 2<<20 {
		t.Errorf("the heap is %d bytes bigger after the acknowledgements", grew)
	}
	if d := store.Stats().Uplinks["mqtt"].Depth; d != 3 {
		t.Errorf("%d messages left, want 3: a refused acknowledgement acknowledges nothing", d)
	}
	if st := u.Stats(); st.Acked != 0 {
		t.Errorf("stats %+v", st)
	}
}
