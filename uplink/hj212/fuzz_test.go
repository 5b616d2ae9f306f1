package hj212

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: Decode never panics, and what decodes re-encodes
// consistently: the packet encodes, the encoding decodes to the same packet
// and encodes to the same bytes again. Canonical frames (all the golden
// ones) come back byte for byte.
func FuzzDecode(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.frames"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		for _, fr := range frames(b) {
			f.Add(fr)
		}
	}
	f.Add([]byte("##0000\r\n"))
	f.Add(withCRC("QN=1;Flag=6;PNUM=2;PNO=2;CP=&&RF=1&&"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		b2, err := Encode(p, FrameOpts{})
		if err != nil {
			t.Fatalf("decoded %+v from %q but cannot encode it: %v", p, b, err)
		}
		p2, err := Decode(b2)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", b2, err)
		}
		if p2 != p {
			t.Fatalf("round trip changed the packet:\n%+v\n%+v", p, p2)
		}
		b3, _ := Encode(p2, FrameOpts{})
		if !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not stable:\n%q\n%q", b2, b3)
		}
	})
}

// FuzzDecodeEncrypted: the same with the 2025 envelope, both encodings, and
// the stream reader over the bytes.
func FuzzDecodeEncrypted(f *testing.F) {
	raw, _ := NewCipher([]byte("0123456789ABCDEF"), EncodingRaw)
	hx, _ := NewCipher([]byte("0123456789ABCDEF"), EncodingHex)
	for _, c := range []*Cipher{raw, hx} {
		for _, cp := range []string{"", "DataTime=20240501083000;a21026-Rtd=12.5,a21026-Flag=N", bigCP(3)} {
			b, _ := Encode(Packet{QN: "1", ST: "32", CN: "2011", PW: "1", MN: "M", Flag: 9, CP: cp, RF: true}, FrameOpts{Cipher: c})
			f.Add(b, c == hx)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, useHex bool) {
		c := raw
		if useHex {
			c = hx
		}
		o := FrameOpts{Cipher: c}
		r := NewReader(bytes.NewReader(b), o)
		for range 4 {
			if _, _, err := r.Next(); err != nil && !errors.Is(err, ErrFrame) && !errors.Is(err, ErrCRC) {
				break
			}
		}
		p, err := DecodeFrame(b, o)
		if err != nil {
			return
		}
		b2, err := Encode(p, o)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", p, err)
		}
		p2, err := DecodeFrame(b2, o)
		if err != nil || p2 != p {
			t.Fatalf("round trip: %+v, %v\nwant %+v", p2, err, p)
		}
	})
}
