package buffer

import (
	"bytes"
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
	got, err := DecodeRecord(EncodeRecord(nil, m), 9, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Readings[1].Fault != "open_circuit" || got.Readings[0].Fault != "" || got.Events[0].Reason != "calibration" || got.Events[0].By != "uid 0" {
		t.Fatalf("v2 round trip lost a field: %+v %+v", got.Readings, got.Events)
	}
	// Version 1 is version 2 without the extension's two counts.
	plain := rt(t0, 3)
	v2 := EncodeRecord(nil, plain)
	v1 := append([]byte{1}, v2[1:len(v2)-2]...)
	old, err := DecodeRecord(v1, 9, nil)
	if err != nil || len(old.Readings) != 3 || old.Readings[2].Point != plain.Readings[2].Point {
		t.Fatalf("a version 1 record: %+v %v", old, err)
	}
}
