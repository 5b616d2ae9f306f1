package hj212

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Version is the standard's version as the version field of Flag (bits 2
// and up) carries it.
type Version uint8

// Versions of the standard we speak. HJ/T 212-2005 (version field 0) is not
// supported.
const (
	V2017 Version = 1 // Flag 4..7
	V2025 Version = 2 // Flag 8..11
)

// ParseVersion reads "2017" or "2025".
func ParseVersion(s string) (Version, error) {
	switch s {
	case "2017":
		return V2017, nil
	case "2025":
		return V2025, nil
	}
	return 0, fmt.Errorf("hj212: version %q: want \"2017\" or \"2025\"", s)
}

func (v Version) String() string {
	switch v {
	case V2017:
		return "2017"
	case V2025:
		return "2025"
	}
	return "version(" + strconv.Itoa(int(v)) + ")"
}

// Flag bits below the version field.
const (
	FlagAck   = 1 << 0 // the sender wants an answer (9014 for data)
	FlagSplit = 1 << 1 // the packet is one of PNUM, numbered PNO
)

// MakeFlag is the Flag of a packet of version v.
func MakeFlag(v Version, ack, split bool) int {
	f := int(v) << 2
	if ack {
		f |= FlagAck
	}
	if split {
		f |= FlagSplit
	}
	return f
}

// MaxSegment is the longest data segment, in bytes, that goes out in one
// packet; longer ones are split (see Split).
const MaxSegment = 1024

// maxLength is what the 4-digit length field can say.
const maxLength = 9999

// rfItem is the 2025 resend marker as it opens the CP content (see Packet).
const rfItem = "RF=1"

// Packet is the data segment of one frame, field by field.
//
// CP is the content between "CP=&&" and the closing "&&", without the resend
// marker: RF says whether the packet carries it. Our reading of HJ 212-2025
// (second-hand, like the encryption) is that RF=1 is a field of the data area
// that marks a packet sent again; we write it as the first item of the CP
// content, "CP=&&RF=1;DataTime=...&&", so it is covered by the CRC and, for
// encrypted commands, by the encryption. Decode recognises it only there.
type Packet struct {
	QN, ST, CN, PW, MN string
	Flag               int
	// PNUM and PNO are set exactly when Flag has FlagSplit.
	PNUM, PNO int
	CP        string
	RF        bool
}

// Version is the version field of the packet's Flag.
func (p *Packet) Version() Version { return Version(p.Flag >> 2) }

// AckWanted reports whether the sender asked for an answer.
func (p *Packet) AckWanted() bool { return p.Flag&FlagAck != 0 }

// IsSplit reports whether the packet is one of PNUM parts.
func (p *Packet) IsSplit() bool { return p.Flag&FlagSplit != 0 }

// Errors a frame can fail with; the returned errors wrap them with the
// detail.
var (
	ErrFrame = errors.New("hj212: malformed frame")
	ErrCRC   = errors.New("hj212: CRC mismatch")
)

// CRC16 is the HJ 212 checksum (appendix A of the 2017 standard). It is not
// the Modbus CRC: each byte goes into the high byte's place, crc = (crc>>8) ^ b,
// before the eight shift-and-xor rounds with 0xA001.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc = (crc >> 8) ^ uint16(c)
		for range 8 {
			lsb := crc & 1
			crc >>= 1
			if lsb != 0 {
				crc ^= 0xA001
			}
		}
	}
	return crc
}

// FrameOpts configure the codec.
type FrameOpts struct {
	// Cipher, when set, encrypts the CP content of the commands Encrypted
	// names (HJ 212-2025).
	Cipher *Cipher
}

// Encode returns the frame of p: "##", the 4-digit length of the data
// segment, the data segment, the CRC in 4 upper-case hex digits, CR LF. The
// length and the CRC are those of the plaintext data segment, encrypted or
// not. Encode does not split: see Split.
func Encode(p Packet, o FrameOpts) ([]byte, error) {
	return AppendFrame(nil, p, o)
}

// AppendFrame appends the frame of p to dst.
func AppendFrame(dst []byte, p Packet, o FrameOpts) ([]byte, error) {
	if err := p.validate(); err != nil {
		return dst, err
	}
	seg, cpAt := p.segment(nil)
	if len(seg) > maxLength {
		return dst, fmt.Errorf("hj212: CN %s QN %s: data segment of %d bytes does not fit the 4-digit length field", p.CN, p.QN, len(seg))
	}
	dst = append(dst, '#', '#')
	dst = append(dst, byte('0'+len(seg)/1000), byte('0'+len(seg)/100%10), byte('0'+len(seg)/10%10), byte('0'+len(seg)%10))
	if o.Cipher != nil && Encrypted(p.CN) {
		dst = append(dst, seg[:cpAt]...)
		dst = o.Cipher.seal(dst, seg[cpAt:len(seg)-2])
		dst = append(dst, '&', '&')
	} else {
		dst = append(dst, seg...)
	}
	dst = appendHex4(dst, CRC16(seg))
	return append(dst, '\r', '\n'), nil
}

const upperHex = "0123456789ABCDEF"

func appendHex4(dst []byte, v uint16) []byte {
	return append(dst, upperHex[v>>12], upperHex[v>>8&0xF], upperHex[v>>4&0xF], upperHex[v&0xF])
}

// segment appends the plaintext data segment and returns where the CP
// content starts in it.
func (p *Packet) segment(dst []byte) ([]byte, int) {
	dst = append(dst, "QN="...)
	dst = append(dst, p.QN...)
	dst = append(dst, ";ST="...)
	dst = append(dst, p.ST...)
	dst = append(dst, ";CN="...)
	dst = append(dst, p.CN...)
	dst = append(dst, ";PW="...)
	dst = append(dst, p.PW...)
	dst = append(dst, ";MN="...)
	dst = append(dst, p.MN...)
	dst = append(dst, ";Flag="...)
	dst = strconv.AppendInt(dst, int64(p.Flag), 10)
	if p.IsSplit() {
		dst = append(dst, ";PNUM="...)
		dst = strconv.AppendInt(dst, int64(p.PNUM), 10)
		dst = append(dst, ";PNO="...)
		dst = strconv.AppendInt(dst, int64(p.PNO), 10)
	}
	dst = append(dst, ";CP=&&"...)
	cpAt := len(dst)
	if p.RF {
		dst = append(dst, rfItem...)
		if p.CP != "" {
			dst = append(dst, ';')
		}
	}
	dst = append(dst, p.CP...)
	return append(dst, '&', '&'), cpAt
}

// validate checks what would make the frame unreadable or ambiguous.
func (p *Packet) validate() error {
	for _, f := range [...]struct{ k, v string }{{"QN", p.QN}, {"ST", p.ST}, {"CN", p.CN}, {"PW", p.PW}, {"MN", p.MN}} {
		if err := checkValue(f.k, f.v); err != nil {
			return fmt.Errorf("hj212: CN %s QN %s: %w", p.CN, p.QN, err)
		}
	}
	if p.Flag < 0 || p.Flag > 255 {
		return fmt.Errorf("hj212: CN %s QN %s: Flag %d is not a byte", p.CN, p.QN, p.Flag)
	}
	if p.IsSplit() {
		if p.PNUM < 1 || p.PNUM > 9999 || p.PNO < 1 || p.PNO > p.PNUM {
			return fmt.Errorf("hj212: CN %s QN %s: split packet PNUM=%d PNO=%d: want 1 <= PNO <= PNUM <= 9999", p.CN, p.QN, p.PNUM, p.PNO)
		}
	} else if p.PNUM != 0 || p.PNO != 0 {
		return fmt.Errorf("hj212: CN %s QN %s: PNUM/PNO without the split bit in Flag %d", p.CN, p.QN, p.Flag)
	}
	if err := checkContent(p.CP); err != nil {
		return fmt.Errorf("hj212: CN %s QN %s: %w", p.CN, p.QN, err)
	}
	if !p.RF && (p.CP == rfItem || strings.HasPrefix(p.CP, rfItem+";")) {
		return fmt.Errorf("hj212: CN %s QN %s: CP starts with %s; set Packet.RF instead", p.CN, p.QN, rfItem)
	}
	return nil
}

// checkValue accepts header values that cannot be mistaken for separators.
func checkValue(k, v string) error {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c < 0x20 || c == 0x7F:
			return fmt.Errorf("%s holds control character 0x%02X", k, c)
		case c == ';' || c == '=' || c == '&':
			return fmt.Errorf("%s %q holds %q, a separator", k, v, c)
		}
	}
	return nil
}

// checkContent accepts CP content that cannot end the data area early.
func checkContent(cp string) error {
	for i := 0; i < len(cp); i++ {
		if c := cp[i]; c < 0x20 || c == 0x7F {
			return fmt.Errorf("CP holds control character 0x%02X at %d", c, i)
		}
	}
	if i := strings.Index(cp, "&&"); i >= 0 {
		return fmt.Errorf("CP holds \"&&\" at %d, the end of the data area", i)
	}
	return nil
}

// Decode reads one plaintext frame (exactly one, with its CR LF).
func Decode(b []byte) (Packet, error) {
	return DecodeFrame(b, FrameOpts{})
}

// DecodeFrame reads one frame, decrypting its CP content when o has a cipher
// and the command is one Encrypted names. The CRC, computed over the
// plaintext, tells an encrypted frame from a plaintext one.
func DecodeFrame(b []byte, o FrameOpts) (Packet, error) {
	if len(b) < 12 || b[0] != '#' || b[1] != '#' {
		return Packet{}, fmt.Errorf("%w: does not start with ## (%d bytes)", ErrFrame, len(b))
	}
	n, ok := parse4(b[2:6])
	if !ok {
		return Packet{}, fmt.Errorf("%w: length field %q is not 4 digits", ErrFrame, b[2:6])
	}
	if b[len(b)-2] != '\r' || b[len(b)-1] != '\n' {
		return Packet{}, fmt.Errorf("%w: does not end with CR LF", ErrFrame)
	}
	wire := b[6 : len(b)-6]
	want, ok := parseHex4(b[len(b)-6 : len(b)-2])
	if !ok {
		return Packet{}, fmt.Errorf("%w: CRC field %q is not 4 hex digits", ErrFrame, b[len(b)-6:len(b)-2])
	}
	var errs []error
	if o.Cipher != nil {
		if seg, ok := o.Cipher.openSegment(wire); ok && len(seg) == n && CRC16(seg) == want {
			p, err := parseSegment(seg)
			if err == nil {
				return p, nil
			}
			errs = append(errs, err)
		}
	}
	if len(wire) != n {
		if len(errs) > 0 {
			return Packet{}, errs[0]
		}
		return Packet{}, fmt.Errorf("%w: length field says %d, data segment has %d bytes", ErrFrame, n, len(wire))
	}
	if got := CRC16(wire); got != want {
		return Packet{}, fmt.Errorf("%w: frame says %04X, data segment sums to %04X", ErrCRC, want, got)
	}
	return parseSegment(wire)
}

func parse4(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) == 4
}

func parseHex4(b []byte) (uint16, bool) {
	v, err := strconv.ParseUint(string(b), 16, 16)
	return uint16(v), err == nil && len(b) == 4
}

// cpMarker opens the data area.
var cpMarker = []byte("CP=&&")

// parseSegment reads a plaintext data segment.
func parseSegment(seg []byte) (Packet, error) {
	var p Packet
	at := bytes.Index(seg, cpMarker)
	if at < 0 {
		return p, fmt.Errorf("%w: no CP=&& in the data segment", ErrFrame)
	}
	if len(seg) < at+len(cpMarker)+2 || !bytes.HasSuffix(seg, []byte("&&")) {
		return p, fmt.Errorf("%w: the data area is not closed by &&", ErrFrame)
	}
	content := string(seg[at+len(cpMarker) : len(seg)-2])
	header := string(seg[:at])
	if header != "" {
		if !strings.HasSuffix(header, ";") {
			return p, fmt.Errorf("%w: no ; before CP", ErrFrame)
		}
		header = header[:len(header)-1]
	}
	seen := map[string]bool{}
	var flag, pnum, pno string
	for f := range strings.SplitSeq(header, ";") {
		if header == "" {
			break
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return p, fmt.Errorf("%w: header field %q is not key=value", ErrFrame, f)
		}
		var dst *string
		switch k {
		case "QN":
			dst = &p.QN
		case "ST":
			dst = &p.ST
		case "CN":
			dst = &p.CN
		case "PW":
			dst = &p.PW
		case "MN":
			dst = &p.MN
		case "Flag":
			dst = &flag
		case "PNUM":
			dst = &pnum
		case "PNO":
			dst = &pno
		default:
			continue // a field we do not know: ignored
		}
		if seen[k] {
			return p, fmt.Errorf("%w: header field %s twice", ErrFrame, k)
		}
		seen[k] = true
		if err := checkValue(k, v); err != nil {
			return p, fmt.Errorf("%w: %v", ErrFrame, err)
		}
		*dst = v
	}
	var ok bool
	if seen["Flag"] {
		if p.Flag, ok = canonicalInt(flag, 255); !ok {
			return p, fmt.Errorf("%w: Flag %q is not a number 0..255", ErrFrame, flag)
		}
	}
	if p.IsSplit() {
		if p.PNUM, ok = canonicalInt(pnum, 9999); !ok || p.PNUM < 1 {
			return p, fmt.Errorf("%w: split packet with PNUM %q", ErrFrame, pnum)
		}
		if p.PNO, ok = canonicalInt(pno, p.PNUM); !ok || p.PNO < 1 {
			return p, fmt.Errorf("%w: split packet with PNO %q of PNUM %d", ErrFrame, pno, p.PNUM)
		}
	} else if seen["PNUM"] || seen["PNO"] {
		return p, fmt.Errorf("%w: PNUM/PNO without the split bit in Flag %d", ErrFrame, p.Flag)
	}
	if err := checkContent(content); err != nil {
		return p, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	switch {
	case content == rfItem:
		p.RF, content = true, ""
	case strings.HasPrefix(content, rfItem+";"):
		p.RF, content = true, content[len(rfItem)+1:]
	}
	p.CP = content
	return p, nil
}

// canonicalInt reads a decimal number written without sign or leading
// zeros, at most hi.
func canonicalInt(s string, hi int) (int, bool) {
	if s == "" || len(s) > 4 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= hi
}

// splitReserve is kept free in every packet Split makes, so that RF=1 can
// be added on a resend without moving the boundaries: a resend of a split
// seq is the same parts.
const splitReserve = len(rfItem) + 1

// Split cuts p into packets whose data segments, with room for the resend
// marker, are at most max bytes (MaxSegment in the standard), numbered PNO
// 1..PNUM under p's QN with the split bit set. A packet that fits is
// returned alone, unchanged. Cuts fall between CP items (at ";"), so a
// factor's group stays whole; a leading DataTime item is repeated at the
// start of every part so that each part says when its data is from.
func Split(p Packet, max int) ([]Packet, error) {
	if p.IsSplit() {
		return nil, fmt.Errorf("hj212: CN %s QN %s: already part %d of %d", p.CN, p.QN, p.PNO, p.PNUM)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	whole := p
	whole.RF = false
	seg, _ := whole.segment(nil)
	if len(seg)+splitReserve <= max {
		return []Packet{p}, nil
	}
	probe := whole
	probe.Flag |= FlagSplit
	probe.PNUM, probe.PNO, probe.CP = 9999, 9999, ""
	base, _ := probe.segment(nil)
	budget := max - len(base) - splitReserve
	items := strings.Split(p.CP, ";")
	prefix := ""
	if strings.HasPrefix(items[0], "DataTime=") {
		prefix, items = items[0], items[1:]
	}
	if budget < len(prefix)+32 {
		return nil, fmt.Errorf("hj212: CN %s QN %s: a %d-byte packet leaves no room to split %d bytes of CP", p.CN, p.QN, max, len(p.CP))
	}
	var chunks []string
	cur, has := prefix, false
	for _, it := range items {
		next := it
		if cur != "" {
			next = cur + ";" + it
		}
		if len(next) <= budget {
			cur, has = next, true
			continue
		}
		if has {
			chunks = append(chunks, cur)
		}
		cur = it
		if prefix != "" {
			cur = prefix + ";" + it
		}
		if len(cur) > budget {
			return nil, fmt.Errorf("hj212: CN %s QN %s: CP item of %d bytes does not fit a %d-byte packet", p.CN, p.QN, len(it), max)
		}
		has = true
	}
	if has || len(chunks) == 0 {
		chunks = append(chunks, cur)
	}
	if len(chunks) > 9999 {
		return nil, fmt.Errorf("hj212: CN %s QN %s: %d parts, more than PNUM can say", p.CN, p.QN, len(chunks))
	}
	parts := make([]Packet, len(chunks))
	for i, c := range chunks {
		q := p
		q.Flag |= FlagSplit
		q.PNUM, q.PNO, q.CP = len(chunks), i+1, c
		parts[i] = q
	}
	return parts, nil
}

// Join reassembles the parts of one split packet (what a platform does): it
// is the inverse of Split.
func Join(parts []Packet) (Packet, error) {
	if len(parts) == 0 {
		return Packet{}, errors.New("hj212: join: no parts")
	}
	ps := append([]Packet(nil), parts...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].PNO < ps[j].PNO })
	first := ps[0]
	if !first.IsSplit() {
		if len(ps) == 1 {
			return first, nil
		}
		return Packet{}, fmt.Errorf("hj212: join QN %s: %d packets without the split bit", first.QN, len(ps))
	}
	if len(ps) != first.PNUM {
		return Packet{}, fmt.Errorf("hj212: join QN %s: %d of %d parts", first.QN, len(ps), first.PNUM)
	}
	prefix := ""
	if it, _, _ := strings.Cut(first.CP, ";"); strings.HasPrefix(it, "DataTime=") {
		prefix = it
	}
	var cp strings.Builder
	cp.WriteString(first.CP)
	for i, q := range ps {
		if q.PNO != i+1 || q.PNUM != first.PNUM || q.QN != first.QN || q.CN != first.CN || q.ST != first.ST || q.MN != first.MN || q.Flag != first.Flag {
			return Packet{}, fmt.Errorf("hj212: join QN %s: part %d (QN %s CN %s PNO %d/%d) does not belong", first.QN, i+1, q.QN, q.CN, q.PNO, q.PNUM)
		}
		if i == 0 {
			continue
		}
		rest := q.CP
		if prefix != "" {
			if rest == prefix {
				continue
			}
			if !strings.HasPrefix(rest, prefix+";") {
				return Packet{}, fmt.Errorf("hj212: join QN %s: part %d does not repeat %s", first.QN, q.PNO, prefix)
			}
			rest = rest[len(prefix)+1:]
		}
		cp.WriteByte(';')
		cp.WriteString(rest)
	}
	out := first
	out.Flag &^= FlagSplit
	out.PNUM, out.PNO, out.CP = 0, 0, cp.String()
	return out, nil
}

// Reader reads frames from a stream, skipping what is not a frame.
type Reader struct {
	br *bufio.Reader
	o  FrameOpts
}

// maxFrame bounds a frame: the longest data segment, hex-encrypted, and the
// framing.
const maxFrame = 2*maxLength + 12

// NewReader returns a reader of the frames on r.
func NewReader(r io.Reader, o FrameOpts) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, maxFrame+16), o: o}
}

// Next returns the next frame and its packet. A malformed frame returns an
// error wrapping ErrFrame or ErrCRC with the raw bytes; the reader has moved
// past it and the next call goes on. Other errors come from the stream.
func (r *Reader) Next() (Packet, []byte, error) {
	for {
		// Find "##"; anything before it is not ours.
		b, err := r.br.Peek(2)
		if err != nil {
			return Packet{}, nil, err
		}
		if b[0] != '#' || b[1] != '#' {
			r.br.Discard(1)
			continue
		}
		head, err := r.br.Peek(6)
		if err != nil {
			return Packet{}, nil, unexpected(err)
		}
		n, ok := parse4(head[2:6])
		if !ok {
			// Not a frame start after all ("###0101..." or noise): look again
			// from the next byte.
			r.br.Discard(1)
			continue
		}
		total := 6 + n + 6
		b, err = r.br.Peek(total)
		if err != nil {
			return Packet{}, nil, unexpected(err)
		}
		if r.o.Cipher != nil && r.o.Cipher.hex && !(b[total-2] == '\r' && b[total-1] == '\n') {
			total += hexExtra(b[6 : 6+n])
			if b, err = r.br.Peek(total); err != nil {
				return Packet{}, nil, unexpected(err)
			}
		}
		if b[total-2] != '\r' || b[total-1] != '\n' {
			r.br.Discard(1)
			return Packet{}, nil, fmt.Errorf("%w: no CR LF where the length field %d puts the end", ErrFrame, n)
		}
		frame := append([]byte(nil), b[:total]...)
		r.br.Discard(total)
		p, err := DecodeFrame(frame, r.o)
		return p, frame, err
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// hexExtra is how much longer than its plaintext a hex-encrypted data
// segment is, judged from its plaintext header: one more byte per
// encrypted byte.
func hexExtra(seg []byte) int {
	at := bytes.Index(seg, cpMarker)
	if at < 0 {
		return 0
	}
	cn := ""
	for f := range strings.SplitSeq(string(seg[:at]), ";") {
		if v, ok := strings.CutPrefix(f, "CN="); ok {
			cn = v
		}
	}
	if !Encrypted(cn) {
		return 0
	}
	content := len(seg) - at - len(cpMarker) - 2
	if content < 0 {
		return 0
	}
	return content / blockSize * blockSize
}
