package devconn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/hazwatch/edgecollector/edge"
)

func TestConn(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x40, W: []byte{0x10}, R: []byte{1, 2}}}}
	c := New(pb, 0x40)
	end := c.Begin(context.Background(), time.Second)
	r := make([]byte, 2)
	if err := c.Tx(0x40, []byte{0x10}, r); err != nil || r[1] != 2 {
		t.Fatal(err, r)
	}
	if err := c.Tx(0x41, []byte{0x10}, r); err == nil || !strings.Contains(err.Error(), "0x41") {
		t.Errorf("other address: %v", err)
	}
	err := c.Tx(0x40, []byte{0x11, 5}, nil)
	if err == nil || !strings.Contains(err.Error(), "write reg 0x11") {
		t.Errorf("missing op: %v", err)
	}
	if Quality(err) != edge.CommFault || Quality(nil) != edge.Good {
		t.Error("Quality")
	}
	if c.SetSpeed(1) == nil {
		t.Error("SetSpeed allowed")
	}
	end()

	ctx, cancel := context.WithCancel(context.Background())
	end = c.Begin(ctx, 0)
	cancel()
	if err := c.Tx(0x40, []byte{0x10}, r); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	if err := c.Sleep(time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep after cancel: %v", err)
	}
	end()

	end = c.Begin(context.Background(), time.Millisecond)
	time.Sleep(2 * time.Millisecond)
	if err := c.Tx(0x40, []byte{0x10}, r); !errors.Is(err, ErrTimeout) {
		t.Errorf("after timeout: %v", err)
	}
	end()
}

func TestBackoff(t *testing.T) {
	b := Backoff{Every: 3}
	if skip, _ := b.Skip(); skip {
		t.Fatal("skips a live device")
	}
	if !b.Fail(errors.New("nack")) || b.Fail(errors.New("nack")) {
		t.Error("Fail: first")
	}
	var got []bool
	for range 6 {
		skip, err := b.Skip()
		if skip && !errors.Is(err, ErrBackingOff) {
			t.Errorf("skip error %v", err)
		}
		got = append(got, skip)
	}
	// Fail was not called again after the probe, so the probe "answered"
	// for Skip's purposes only once OK is called.
	want := []bool{true, true, false, true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("skips %v, want %v", got, want)
		}
	}
	if !b.OK() || b.OK() || b.Dead() {
		t.Error("OK")
	}
}
