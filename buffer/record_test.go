package buffer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hazwatch/edgecollector/edge"
)

func FuzzDecodeRecord(f *testing.F) {
	f.Add(EncodeRecord(nil, sampleMessage()))
	f.Add(EncodeRecord(nil, rt(t0, 3)))
	f.Add([]byte{1, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeRecord(b, 7, nil)
		if err != nil {
			return
		}
		// What decodes re-encodes canonically: decoding that encoding
		// gives the same message, byte for byte once encoded again.
		canon := EncodeRecord(nil, m)
		m2, err := DecodeRecord(canon, 7, nil)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if again := EncodeRecord(nil, m2); !bytes.Equal(again, canon) {
			t.Fatalf("encode/decode not stable:\n in %x\nout %x", canon, again)
		}
	})
}

// TestRecordV2KeepsFaultsAndReadsV1: version 2 records carry the readings'
// fault texts and the maintenance events' reason and by; a version 1
// record (a previous release's backlog) still decodes.
func TestRecordV2KeepsFaultsAndReadsV1(t *testing.T) {
	m := rt(t0, 3)
	m.Readings[1].Fault = "open_circuit"
	m.Events = []edge.Event{{Type: edge.EventMaintenance, State: edge.StateStarted, Point: "GT-1", TS: t0, Reason: "calibration", By: "uid 0"}}
	m.Seq = 9 // the checksum covers the seq
	got, err := DecodeRecord(EncodeRecord(nil, m), 9, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Readings[1].Fault != "open_circuit" || got.Readings[0].Fault != "" || got.Events[0].Reason != "calibration" || got.Events[0].By != "uid 0" {
		t.Fatalf("v2 round trip lost a field: %+v %+v", got.Readings, got.Events)
	}
	// Version 1 is version 3 without the checksum and the extension's two
	// counts.
	plain := rt(t0, 3)
	v3 := EncodeRecord(nil, plain)
	v1 := append([]byte{1}, v3[5:len(v3)-2]...)
	old, err := DecodeRecord(v1, 9, nil)
	if err != nil || len(old.Readings) != 3 || old.Readings[2].Point != plain.Readings[2].Point {
		t.Fatalf("a version 1 record: %+v %v", old, err)
	}
}

// TestRecordGolden pins the on-disk record formats: a release that cannot
// read an earlier release's backlog fails here. The v1 files were written by
// the first release's encoder, the v2 files by the encoder with the
// extension (faults, reason and by), the v3 files are today's format (with
// the checksum). UPDATE_GOLDEN=1 rewrites the v3 files only.
func TestRecordGolden(t *testing.T) {
	cases := []struct {
		file string
		msg  *edge.Message
		seq  uint64
	}{
		{"record-v1-sample.bin", sampleMessage(), 7},
		{"record-v1-rt.bin", rt(t0, 3), 8},
		{"record-v2-sample.bin", sampleMessage(), 7},
		{"record-v2-rt.bin", rt(t0, 3), 8},
		{"record-v3-sample.bin", sampleMessage(), 7},
		{"record-v3-rt.bin", rt(t0, 3), 8},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", c.file)
			if strings.HasPrefix(c.file, "record-v3") {
				m := *c.msg
				m.Seq = c.seq
				enc := EncodeRecord(nil, &m)
				if os.Getenv("UPDATE_GOLDEN") == "1" {
					if err := os.WriteFile(path, enc, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(enc, want) {
					t.Fatalf("the v3 encoding changed:\n got %x\nwant %x\n(a new format needs a new version that still reads this one)", enc, want)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRecord(b, c.seq, nil)
			if err != nil {
				t.Fatalf("%s no longer decodes: %v", c.file, err)
			}
			want := *c.msg
			want.Seq = c.seq
			g := normalise(got)
			g.Seq = c.seq
			w := normalise(&want)
			w.Seq = c.seq
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("%s decodes differently\n got %+v\nwant %+v", c.file, g, w)
			}
		})
	}
}

// TestRecordChecksum: any changed byte of a v2 record, or the record under
// another seq's key, fails to decode (never a wrong message).
func TestRecordChecksum(t *testing.T) {
	m := sampleMessage()
	m.Seq = 42
	enc := EncodeRecord(nil, m)
	if _, err := DecodeRecord(enc, 43, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a record under another seq's key decoded: %v", err)
	}
	for i := range enc {
		for _, x := range []byte{0x01, 0x80, 0xFF} {
			b := bytes.Clone(enc)
			b[i] ^= x
			if _, err := DecodeRecord(b, 42, nil); err == nil {
				t.Fatalf("byte %d ^ %#x: the damaged record decoded", i, x)
			}
		}
	}
	for n := range len(enc) {
		if _, err := DecodeRecord(enc[:n], 42, nil); err == nil {
			t.Fatalf("truncated to %d bytes: decoded", n)
		}
	}
}
