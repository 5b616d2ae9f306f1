package hj212

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"fmt"

	"github.com/emmansun/gmsm/sm4"
)

// The HJ 212-2025 envelope, as we read it: SM4 (GB/T 32907) in ECB mode
// without padding over the CP content (the bytes between "CP=&&" and the
// closing "&&") in whole 16-byte blocks; a tail shorter than a block stays
// plaintext; the ciphertext takes the place of the bytes it encrypts. The
// length field and the CRC are those of the plaintext data segment.
//
// Our reading of the standard is second-hand (we have not had the published
// text), so how the ciphertext is written is configurable: EncodingRaw puts
// the cipher bytes themselves in the frame (the default), EncodingHex writes
// each as two upper-case hex digits. docs/hj212.md says the same.

// Ciphertext encodings.
const (
	EncodingRaw = "raw"
	EncodingHex = "hex"
)

const blockSize = sm4.BlockSize

// Cipher is the SM4 envelope with one key.
type Cipher struct {
	block cipher.Block
	hex   bool
}

// NewCipher returns the envelope for a 16-byte key and a ciphertext
// encoding ("" means raw).
func NewCipher(key []byte, encoding string) (*Cipher, error) {
	c := &Cipher{}
	switch encoding {
	case "", EncodingRaw:
	case EncodingHex:
		c.hex = true
	default:
		return nil, fmt.Errorf("hj212: SM4 ciphertext encoding %q: want raw or hex", encoding)
	}
	b, err := sm4.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("hj212: SM4 key: %w (want 16 bytes)", err)
	}
	c.block = b
	return c, nil
}

// Encoding is the ciphertext encoding, raw or hex.
func (c *Cipher) Encoding() string {
	if c.hex {
		return EncodingHex
	}
	return EncodingRaw
}

// ParseKey reads a key file's content: 16 raw bytes, or 32 hex digits
// (surrounding white space allowed).
func ParseKey(b []byte) ([]byte, error) {
	if len(b) == 16 {
		return append([]byte(nil), b...), nil
	}
	t := bytes.TrimSpace(b)
	if len(t) == 32 {
		k, err := hex.DecodeString(string(t))
		if err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("hj212: SM4 key: want 16 raw bytes or 32 hex digits, got %d bytes", len(b))
}

// Encrypted reports whether the 2025 envelope covers command cn: the data
// commands 2000-2999, 1014 (new key) and 3020 (field-device information).
// Answers, heartbeats and the other commands go in plaintext.
func Encrypted(cn string) bool {
	if len(cn) != 4 {
		return false
	}
	for i := 0; i < 4; i++ {
		if cn[i] < '0' || cn[i] > '9' {
			return false
		}
	}
	return cn[0] == '2' || cn == "1014" || cn == "3020"
}

// Seal returns the wire form of plaintext CP content.
func (c *Cipher) Seal(content []byte) []byte { return c.seal(nil, content) }

func (c *Cipher) seal(dst, content []byte) []byte {
	k := len(content) / blockSize * blockSize
	var blk [blockSize]byte
	for i := 0; i < k; i += blockSize {
		c.block.Encrypt(blk[:], content[i:i+blockSize])
		if c.hex {
			for _, x := range blk {
				dst = append(dst, upperHex[x>>4], upperHex[x&0xF])
			}
		} else {
			dst = append(dst, blk[:]...)
		}
	}
	return append(dst, content[k:]...)
}

// Open returns the plaintext of CP content in wire form.
func (c *Cipher) Open(wire []byte) ([]byte, error) {
	if p, ok := c.open(wire); ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: %d bytes of CP content are not %s SM4 ciphertext", ErrFrame, len(wire), c.Encoding())
}

func (c *Cipher) open(wire []byte) ([]byte, bool) {
	var ct []byte
	var tail []byte
	if c.hex {
		k, t := len(wire)/(2*blockSize), len(wire)%(2*blockSize)
		if t >= blockSize {
			return nil, false
		}
		ct = make([]byte, k*blockSize)
		if _, err := hex.Decode(ct, wire[:2*k*blockSize]); err != nil {
			return nil, false
		}
		tail = wire[2*k*blockSize:]
	} else {
		k := len(wire) / blockSize * blockSize
		ct, tail = append([]byte(nil), wire[:k]...), wire[k:]
	}
	for i := 0; i < len(ct); i += blockSize {
		c.block.Decrypt(ct[i:i+blockSize], ct[i:i+blockSize])
	}
	return append(ct, tail...), true
}

// openSegment returns the plaintext data segment of a wire data segment
// whose command is encrypted.
func (c *Cipher) openSegment(wire []byte) ([]byte, bool) {
	at := bytes.Index(wire, cpMarker)
	if at < 0 || len(wire) < at+len(cpMarker)+2 || !bytes.HasSuffix(wire, []byte("&&")) {
		return nil, false
	}
	cn := ""
	for _, f := range bytes.Split(wire[:at], []byte(";")) {
		if v, ok := bytes.CutPrefix(f, []byte("CN=")); ok {
			cn = string(v)
		}
	}
	if !Encrypted(cn) {
		return nil, false
	}
	plain, ok := c.open(wire[at+len(cpMarker) : len(wire)-2])
	if !ok {
		return nil, false
	}
	seg := make([]byte, 0, at+len(cpMarker)+len(plain)+2)
	seg = append(seg, wire[:at+len(cpMarker)]...)
	seg = append(seg, plain...)
	return append(seg, '&', '&'), true
}
