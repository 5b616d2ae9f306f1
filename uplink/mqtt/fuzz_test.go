package mqtt

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hazwatch/edgecollector/buffer"
)

// FuzzParseAck: whatever the platform publishes on .../ack, parseAck never
// panics, and accepts only valid JSON within MaxAckBytes naming at most
// MaxAckSeqs seqs; everything refused is counted.
func FuzzParseAck(f *testing.F) {
	for _, s := range []string{`{"seqs":[1,2,3]}`, `{"seqs":[]}`, `{"seqs":null}`, `{"seqs":[-1]}`, `{"seqs":[1.5]}`, `[1,2]`, `{"seqs":"1"}`, ``, `{`, "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Add(append(append([]byte(`{"seqs":[`), bytes.Repeat([]byte("1,"), MaxAckSeqs)...), "1]}"...))
	store := buffer.NewMemory(buffer.Opts{Uplinks: []string{"mqtt"}}, 0)
	u, err := New(Opts{URL: "tcp://127.0.0.1:1", Store: store, Encoder: encoder()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		before := u.Stats().AcksRejected
		seqs, ok := u.parseAck(b)
		if !ok {
			if u.Stats().AcksRejected != before+1 {
				t.Fatalf("refused %q without counting it", b)
			}
			return
		}
		if len(b) > MaxAckBytes || len(seqs) > MaxAckSeqs || !json.Valid(b) {
			t.Fatalf("accepted %d bytes naming %d seqs (valid JSON %v)", len(b), len(seqs), json.Valid(b))
		}
	})
}
