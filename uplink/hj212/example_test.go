package hj212_test

import (
	"fmt"

	"github.com/hazwatch/edgecollector/uplink/hj212"
)

// The frame of the 2017 standard's appendix, decoded and encoded again.
func ExampleDecode() {
	frame := []byte("##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n")
	p, err := hj212.Decode(frame)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.CN, p.Version(), p.AckWanted(), p.CP)
	out, _ := hj212.Encode(p, hj212.FrameOpts{})
	fmt.Printf("%q\n", out)
	// Output:
	// 1062 2017 true RtdInterval=30
	// "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
}

// A 9014 answer as the platform sends it for a data packet.
func ExampleEncode() {
	ack := hj212.Packet{QN: "20240501083000042", ST: hj212.STInteraction, CN: hj212.CNDataAck, PW: "123456", MN: "MN0001",
		Flag: hj212.MakeFlag(hj212.V2017, false, false)}
	b, _ := hj212.Encode(ack, hj212.FrameOpts{})
	fmt.Printf("%q\n", b)
	// Output:
	// "##0069QN=20240501083000042;ST=91;CN=9014;PW=123456;MN=MN0001;Flag=4;CP=&&&&5D80\r\n"
}
