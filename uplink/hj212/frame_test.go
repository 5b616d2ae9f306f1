package hj212

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden reads testdata/golden/<name>.frames (written by testdata/mkframes.py,
// which frames hand-written data segments with its own CRC).
func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name+".frames"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frames splits concatenated frames at CR LF (plaintext frames only).
func frames(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return append(out, b)
		}
		out = append(out, b[:i+2])
		b = b[i+2:]
	}
	return out
}

func TestCRC16(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
	}{
		// The 2017 appendix frame's data segment.
		{"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&", 0x1C80},
		{"", 0xFFFF},
		// Computed with testdata/mkframes.py's crc().
		{"QN=20240501083000042;ST=91;CN=9014;PW=123456;MN=MN0001;Flag=4;CP=&&&&", crcOfGolden(t, "dataack")},
	} {
		if got := CRC16([]byte(tc.in)); got != tc.want {
			t.Errorf("CRC16(%q) = %04X, want %04X", tc.in, got, tc.want)
		}
	}
	// Not the Modbus CRC: that one sums the appendix segment to 0759.
	if CRC16([]byte("QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&")) == 0x0759 {
		t.Error("CRC16 is the Modbus CRC")
	}
}

func crcOfGolden(t *testing.T, name string) uint16 {
	b := golden(t, name)
	var v uint16
	fmt.Sscanf(string(b[len(b)-6:len(b)-2]), "%04X", &v)
	return v
}

func TestAppendixFrame(t *testing.T) {
	raw := golden(t, "appendix_2017_1062")
	want := "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
	if string(raw) != want {
		t.Fatalf("golden file is not the appendix frame:\n%q", raw)
	}
	p, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	wantP := Packet{QN: "20160801085857223", ST: "32", CN: "1062", PW: "100000", MN: "010000A8900016F000169DC0", Flag: 5, CP: "RtdInterval=30"}
	if p != wantP {
		t.Fatalf("decoded %+v\nwant    %+v", p, wantP)
	}
	if p.Version() != V2017 || !p.AckWanted() || p.IsSplit() {
		t.Errorf("Flag 5: version %s ack %v split %v; want 2017, ack, not split", p.Version(), p.AckWanted(), p.IsSplit())
	}
	if c := CRC16(raw[6 : len(raw)-6]); c != 0x1C80 {
		t.Errorf("CRC %04X, want 1C80", c)
	}
	out, err := Encode(p, FrameOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Errorf("re-encoded\n%q\nwant\n%q", out, raw)
	}
}

// TestHandWrittenFrames decodes frames written by hand from the field rules
// and encodes the packets back to the same bytes.
func TestHandWrittenFrames(t *testing.T) {
	for _, tc := range []struct {
		golden string
		want   Packet
	}{
		{"qnrtn", Packet{QN: "20160801085857223", ST: "91", CN: "9011", PW: "100000", MN: "010000A8900016F000169DC0", Flag: 4, CP: "QnRtn=1"}},
		{"exertn", Packet{QN: "20160801085857223", ST: "91", CN: "9012", PW: "100000", MN: "010000A8900016F000169DC0", Flag: 4, CP: "ExeRtn=1"}},
		{"dataack", Packet{QN: "20240501083000042", ST: "91", CN: "9014", PW: "123456", MN: "MN0001", Flag: 4}},
		{"heartbeat_2025", Packet{QN: "20260101000000000", ST: "32", CN: "9015", PW: "123456", MN: "MN0001", Flag: 8}},
		{"split_part", Packet{QN: "20240501083000042", ST: "32", CN: "2011", PW: "123456", MN: "MN0001", Flag: 7, PNUM: 2, PNO: 1,
			CP: "DataTime=20240501083000;a21026-Rtd=1,a21026-Flag=N"}},
		{"rt_2025_resend", Packet{QN: "20240501083000042", ST: "32", CN: "2011", PW: "123456", MN: "MN0001", Flag: 9, RF: true,
			CP: "DataTime=20240501083000;a21026-Rtd=12.5,a21026-Flag=N;a21005-Flag=B;a99001-Rtd=105,a99001-Flag=T;a99002-Rtd=3.25,a99002-Flag=M;a99003-Flag=B;a99004-Rtd=1,a99004-Flag=N"}},
		{"get_time", Packet{QN: "20240501100000123", ST: "32", CN: "1011", PW: "123456", MN: "MN0001", Flag: 5}},
		{"history_minute", Packet{QN: "20240501100000124", ST: "32", CN: "2051", PW: "123456", MN: "MN0001", Flag: 5,
			CP: "BeginTime=20240501080000;EndTime=20240501083000"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			raw := golden(t, tc.golden)
			p, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			if p != tc.want {
				t.Fatalf("decoded %+v\nwant    %+v", p, tc.want)
			}
			out, err := Encode(tc.want, FrameOpts{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, raw) {
				t.Errorf("encoded\n%q\nwant\n%q", out, raw)
			}
		})
	}
}

func TestMakeFlag(t *testing.T) {
	for _, tc := range []struct {
		v          Version
		ack, split bool
		want       int
	}{
		{V2017, false, false, 4}, {V2017, true, false, 5}, {V2017, false, true, 6}, {V2017, true, true, 7},
		{V2025, false, false, 8}, {V2025, true, false, 9}, {V2025, false, true, 10}, {V2025, true, true, 11},
	} {
		if got := MakeFlag(tc.v, tc.ack, tc.split); got != tc.want {
			t.Errorf("MakeFlag(%s, ack %v, split %v) = %d, want %d", tc.v, tc.ack, tc.split, got, tc.want)
		}
	}
}

func reframe(seg string, crc string) []byte {
	return []byte(fmt.Sprintf("##%04d%s%s\r\n", len(seg), seg, crc))
}

func withCRC(seg string) []byte {
	return reframe(seg, fmt.Sprintf("%04X", CRC16([]byte(seg))))
}

func TestDecodeErrors(t *testing.T) {
	good := "QN=1;ST=32;CN=2011;PW=1;MN=M;Flag=4;CP=&&a=1&&"
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrFrame},
		{"no ##", []byte("@@0046" + good + "0000\r\n"), ErrFrame},
		{"length not digits", []byte("##00x6" + good + "0000\r\n"), ErrFrame},
		{"no CR LF", append(withCRC(good)[:len(withCRC(good))-2], 'x', 'y'), ErrFrame},
		{"bad CRC", reframe(good, "0000"), ErrCRC},
		{"CRC not hex", reframe(good, "ZZZZ"), ErrFrame},
		{"length mismatch", []byte(fmt.Sprintf("##%04d%s%04X\r\n", len(good)+1, good, CRC16([]byte(good)))), ErrFrame},
		{"no CP", withCRC("QN=1;ST=32;CN=2011;Flag=4"), ErrFrame},
		{"CP not closed", withCRC("QN=1;ST=32;CN=2011;Flag=4;CP=&&a=1"), ErrFrame},
		{"field without =", withCRC("QN=1;ST;CN=2011;Flag=4;CP=&&&&"), ErrFrame},
		{"duplicate field", withCRC("QN=1;QN=2;CN=2011;Flag=4;CP=&&&&"), ErrFrame},
		{"Flag not a number", withCRC("QN=1;Flag=x;CP=&&&&"), ErrFrame},
		{"Flag leading zero", withCRC("QN=1;Flag=05;CP=&&&&"), ErrFrame},
		{"Flag over 255", withCRC("QN=1;Flag=256;CP=&&&&"), ErrFrame},
		{"split without PNUM", withCRC("QN=1;Flag=6;CP=&&&&"), ErrFrame},
		{"PNO over PNUM", withCRC("QN=1;Flag=6;PNUM=2;PNO=3;CP=&&&&"), ErrFrame},
		{"PNUM without split bit", withCRC("QN=1;Flag=4;PNUM=2;PNO=1;CP=&&&&"), ErrFrame},
		{"control character in CP", withCRC("QN=1;Flag=4;CP=&&a=\x01&&"), ErrFrame},
		{"&& inside CP", withCRC("QN=1;Flag=4;CP=&&a=1&&b=2&&"), ErrFrame},
		{"no ; before CP", withCRC("QN=1CP=&&&&"), ErrFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%q) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
	// Unknown header fields are ignored.
	p, err := Decode(withCRC("QN=1;ST=32;CN=2011;PW=1;MN=M;Flag=4;XX=y;CP=&&a=1&&"))
	if err != nil || p.QN != "1" || p.CP != "a=1" {
		t.Errorf("unknown field: %+v, %v", p, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := Packet{QN: "1", ST: "32", CN: "2011", PW: "1", MN: "M", Flag: 4}
	for _, tc := range []struct {
		name string
		mod  func(*Packet)
	}{
		{"separator in MN", func(p *Packet) { p.MN = "a;b" }},
		{"= in PW", func(p *Packet) { p.PW = "a=b" }},
		{"& in QN", func(p *Packet) { p.QN = "a&b" }},
		{"newline in ST", func(p *Packet) { p.ST = "3\n2" }},
		{"&& in CP", func(p *Packet) { p.CP = "a=1&&b" }},
		{"CR in CP", func(p *Packet) { p.CP = "a=1\r" }},
		{"PNUM without split", func(p *Packet) { p.PNUM, p.PNO = 2, 1 }},
		{"split without PNUM", func(p *Packet) { p.Flag |= FlagSplit }},
		{"Flag out of range", func(p *Packet) { p.Flag = 300 }},
		{"RF in CP", func(p *Packet) { p.CP = "RF=1;a=1" }},
		{"too long", func(p *Packet) { p.CP = strings.Repeat("a", 10000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.mod(&p)
			if b, err := Encode(p, FrameOpts{}); err == nil {
				t.Fatalf("Encode(%+v) = %q, want an error", p, b)
			}
		})
	}
}

// bigCP is an rt content of n factors, well over MaxSegment for n >= 40.
func bigCP(n int) string {
	var b strings.Builder
	b.WriteString("DataTime=20240501083000")
	for i := range n {
		fmt.Fprintf(&b, ";a%05d-Rtd=%d.%03d,a%05d-Flag=N", i, i*7, i, i)
	}
	return b.String()
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cp    string
		parts int // 0: more than one
	}{
		{"fits", "DataTime=20240501083000;a21026-Rtd=1,a21026-Flag=N", 1},
		{"exactly at the limit less RF room", "", 1},
		{"two parts", bigCP(30), 2},
		{"many parts", bigCP(400), 0},
		{"no DataTime", strings.TrimPrefix(bigCP(100), "DataTime=20240501083000;"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Packet{QN: "20240501083000042", ST: "32", CN: "2011", PW: "123456", MN: "MN0001", Flag: MakeFlag(V2025, true, false), CP: tc.cp}
			if tc.name == "exactly at the limit less RF room" {
				seg, _ := p.segment(nil)
				p.CP = "a=" + strings.Repeat("1", MaxSegment-splitReserve-len(seg)-2)
			}
			parts, err := Split(p, MaxSegment)
			if err != nil {
				t.Fatal(err)
			}
			if tc.parts > 0 && len(parts) != tc.parts {
				t.Fatalf("%d parts, want %d", len(parts), tc.parts)
			}
			if tc.parts == 0 && len(parts) < 3 {
				t.Fatalf("%d parts, want several", len(parts))
			}
			if len(parts) == 1 {
				if parts[0] != p {
					t.Fatalf("a packet that fits changed: %+v", parts[0])
				}
			}
			rfParts, err := Split(withRF(p), MaxSegment)
			if err != nil {
				t.Fatal(err)
			}
			if len(rfParts) != len(parts) {
				t.Fatalf("with RF %d parts, without %d: a resend would not be the same parts", len(rfParts), len(parts))
			}
			for i, q := range parts {
				if len(parts) > 1 && (!q.IsSplit() || q.PNUM != len(parts) || q.PNO != i+1 || q.QN != p.QN) {
					t.Errorf("part %d: Flag %d PNUM %d PNO %d QN %s", i, q.Flag, q.PNUM, q.PNO, q.QN)
				}
				if rfParts[i].CP != q.CP || !rfParts[i].RF {
					t.Errorf("part %d: the resend's content differs", i+1)
				}
				for _, x := range []Packet{q, rfParts[i]} {
					seg, _ := x.segment(nil)
					if len(seg) > MaxSegment {
						t.Errorf("part %d (RF %v): data segment of %d bytes", i+1, x.RF, len(seg))
					}
					b, err := Encode(x, FrameOpts{})
					if err != nil {
						t.Fatal(err)
					}
					back, err := Decode(b)
					if err != nil || back != x {
						t.Fatalf("part %d round trip: %+v, %v", i+1, back, err)
					}
				}
				if len(parts) > 1 && strings.HasPrefix(tc.cp, "DataTime=") && !strings.HasPrefix(q.CP, "DataTime=20240501083000;") {
					t.Errorf("part %d does not repeat DataTime: %.40q", i+1, q.CP)
				}
			}
			whole, err := Join(parts)
			if err != nil {
				t.Fatal(err)
			}
			if whole != p {
				t.Errorf("Join(Split(p)) differs:\n%.200q\n%.200q", whole.CP, p.CP)
			}
		})
	}
}

func withRF(p Packet) Packet { p.RF = true; return p }

func TestReader(t *testing.T) {
	a := golden(t, "appendix_2017_1062")
	b := golden(t, "dataack")
	bad := reframe("QN=1;Flag=4;CP=&&&&", "0000")
	var stream []byte
	stream = append(stream, "junk#"...)
	stream = append(stream, a...)
	stream = append(stream, bad...)
	stream = append(stream, "\r\n#"...)
	stream = append(stream, b...)
	stream = append(stream, a[:20]...) // cut short
	r := NewReader(bytes.NewReader(stream), FrameOpts{})
	var got []string
	var errs []error
	for {
		p, _, err := r.Next()
		if err != nil {
			if errors.Is(err, ErrFrame) || errors.Is(err, ErrCRC) {
				errs = append(errs, err)
				continue
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("end of stream: %v, want unexpected EOF", err)
			}
			break
		}
		got = append(got, p.CN)
	}
	if strings.Join(got, ",") != "1062,9014" {
		t.Errorf("read %v, want 1062,9014", got)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrCRC) {
		t.Errorf("errors %v, want one CRC error", errs)
	}
}
