package hj212

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm4"
)

// TestSM4Vector is the GB/T 32907-2016 example: key = plaintext =
// 0123456789abcdeffedcba9876543210.
func TestSM4Vector(t *testing.T) {
	key, _ := hex.DecodeString("0123456789abcdeffedcba9876543210")
	want, _ := hex.DecodeString("681edf34d206965e86b3e94f536e4246")
	for _, tc := range []struct {
		enc  string
		wire []byte
	}{
		{EncodingRaw, want},
		{EncodingHex, []byte(strings.ToUpper(hex.EncodeToString(want)))},
	} {
		t.Run(tc.enc, func(t *testing.T) {
			c, err := NewCipher(key, tc.enc)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Seal(key) // plaintext = key
			if !bytes.Equal(got, tc.wire) {
				t.Fatalf("Seal = %x, want %x", got, tc.wire)
			}
			back, err := c.Open(got)
			if err != nil || !bytes.Equal(back, key) {
				t.Fatalf("Open = %x, %v", back, err)
			}
		})
	}
}

// TestEncryptedFrame checks the envelope on whole frames: whole blocks
// encrypted in place, the tail plaintext, length and CRC over the plaintext.
func TestEncryptedFrame(t *testing.T) {
	key := []byte("0123456789ABCDEF")
	block, err := sm4.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{EncodingRaw, EncodingHex} {
		for _, cp := range []string{
			"",                 // nothing to encrypt
			"DataTime=2024",    // shorter than a block: all plaintext
			"DataTime=2024050", // exactly one block, no tail
			"DataTime=20240501083000;a21026-Rtd=12.5,a21026-Flag=N", // 3 blocks + 5-byte tail
			bigCP(20),
		} {
			t.Run(enc+"/"+cp[:min(len(cp), 16)], func(t *testing.T) {
				c, err := NewCipher(key, enc)
				if err != nil {
					t.Fatal(err)
				}
				p := Packet{QN: "20240501083000042", ST: "32", CN: "2011", PW: "123456", MN: "MN0001", Flag: 9, CP: cp, RF: true}
				plain, err := Encode(p, FrameOpts{})
				if err != nil {
					t.Fatal(err)
				}
				wire, err := Encode(p, FrameOpts{Cipher: c})
				if err != nil {
					t.Fatal(err)
				}
				// Length field and CRC are the plaintext's.
				if !bytes.Equal(wire[:6], plain[:6]) || !bytes.Equal(wire[len(wire)-6:], plain[len(plain)-6:]) {
					t.Errorf("length/CRC %q...%q, plaintext frame has %q...%q", wire[:6], wire[len(wire)-6:], plain[:6], plain[len(plain)-6:])
				}
				// The header is plaintext; the content is the independent
				// SM4-ECB of whole blocks, then the tail as is.
				content := []byte("RF=1")
				if cp != "" {
					content = append(content, ';')
					content = append(content, cp...)
				}
				k := len(content) / 16 * 16
				var want []byte
				for i := 0; i < k; i += 16 {
					blk := make([]byte, 16)
					block.Encrypt(blk, content[i:i+16])
					if enc == EncodingHex {
						blk = []byte(strings.ToUpper(hex.EncodeToString(blk)))
					}
					want = append(want, blk...)
				}
				want = append(want, content[k:]...)
				at := bytes.Index(wire, []byte("CP=&&")) + 5
				if !bytes.Equal(wire[:at], plain[:at]) {
					t.Errorf("header changed: %q", wire[:at])
				}
				if got := wire[at : len(wire)-8]; !bytes.Equal(got, want) {
					t.Errorf("content on the wire\n%x\nwant\n%x", got, want)
				}
				if k > 0 && bytes.Contains(wire, content[:16]) {
					t.Error("first block readable on the wire")
				}
				if tail := content[k:]; len(tail) > 0 && !bytes.HasSuffix(wire[:len(wire)-8], tail) {
					t.Errorf("tail %q not plaintext on the wire", tail)
				}
				// Round trip, by frame and through the stream reader.
				back, err := DecodeFrame(wire, FrameOpts{Cipher: c})
				if err != nil || back != p {
					t.Fatalf("DecodeFrame: %+v, %v", back, err)
				}
				r := NewReader(bytes.NewReader(append(append(append([]byte(nil), wire...), plain...), wire...)), FrameOpts{Cipher: c})
				for i := range 3 {
					got, _, err := r.Next()
					if err != nil || got != p {
						t.Fatalf("Reader frame %d: %+v, %v", i, got, err)
					}
				}
				// Without the key it does not decode (unless nothing was
				// encrypted).
				if _, err := Decode(wire); k > 0 && err == nil {
					t.Error("encrypted frame decoded without the key")
				}
				// With the wrong key, the CRC catches it.
				other, _ := NewCipher([]byte("FEDCBA9876543210"), enc)
				if _, err := DecodeFrame(wire, FrameOpts{Cipher: other}); k > 0 && err == nil {
					t.Error("decoded with the wrong key")
				}
			})
		}
	}
}

// TestNotEncrypted: answers and heartbeats go in plaintext even with a key.
func TestNotEncrypted(t *testing.T) {
	c, _ := NewCipher([]byte("0123456789ABCDEF"), EncodingRaw)
	for _, cn := range []string{"9011", "9012", "9014", "9015", "1011", "1000"} {
		p := Packet{QN: "1", ST: "91", CN: cn, PW: "1", MN: "M", Flag: 8, CP: "QnRtn=1;SystemTime=20240501083000"}
		a, _ := Encode(p, FrameOpts{Cipher: c})
		b, _ := Encode(p, FrameOpts{})
		if !bytes.Equal(a, b) {
			t.Errorf("CN %s encrypted", cn)
		}
	}
	for cn, want := range map[string]bool{"2011": true, "2051": true, "2061": true, "1014": true, "3020": true, "9014": false, "20111": false, "2x11": false} {
		if Encrypted(cn) != want {
			t.Errorf("Encrypted(%q) = %v", cn, !want)
		}
	}
}

func TestCipherErrors(t *testing.T) {
	if _, err := NewCipher([]byte("short"), EncodingRaw); err == nil {
		t.Error("short key accepted")
	}
	if _, err := NewCipher([]byte("0123456789ABCDEF"), "base64"); err == nil {
		t.Error("unknown encoding accepted")
	}
	c, _ := NewCipher([]byte("0123456789ABCDEF"), EncodingHex)
	for _, w := range []string{"ZZ" + strings.Repeat("0", 30), strings.Repeat("0", 32+16)} {
		if _, err := c.Open([]byte(w)); !errors.Is(err, ErrFrame) {
			t.Errorf("Open(%q) = %v, want ErrFrame", w, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"0123456789ABCDEF", "0123456789ABCDEF", true},
		{"30313233343536373839414243444546\n", "0123456789ABCDEF", true},
		{"  30313233343536373839414243444546  ", "0123456789ABCDEF", true},
		{"0123456789ABCDE", "", false},
		{"3031323334353637383941424344454Z", "", false},
	} {
		k, err := ParseKey([]byte(tc.in))
		if (err == nil) != tc.ok || string(k) != tc.want {
			t.Errorf("ParseKey(%q) = %q, %v", tc.in, k, err)
		}
	}
}
