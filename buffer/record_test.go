package buffer

import (
	"bytes"
	"testing"
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
