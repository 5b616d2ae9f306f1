#!/usr/bin/env python3
"""Writes the golden frames in testdata/golden from data segments written by
hand from the standard's field rules. The framing and the CRC (HJ 212-2017
appendix A) are implemented here again, apart from the Go code under test,
so a golden file never comes from the encoder it checks.

Run from this directory: python3 mkframes.py
"""

def crc(data: bytes) -> str:
    c = 0xFFFF
    for b in data:
        c = (c >> 8) ^ b
        for _ in range(8):
            lsb = c & 1
            c >>= 1
            if lsb:
                c ^= 0xA001
    return "%04X" % c

def frame(seg: str) -> bytes:
    d = seg.encode("ascii")
    return b"##%04d" % len(d) + d + crc(d).encode() + b"\r\n"

HDR17 = "ST=32;CN={cn};PW=123456;MN=MN0001;Flag={flag}"

GOLDEN = {
    # The 2017 appendix frame (CRC 1C80), byte for byte.
    "appendix_2017_1062": [
        "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&",
    ],
    # rtd message (the real-time snapshot) seq 1042 of the boundary
    # 2024-05-01 08:30:00 +08:00, version 2017, acks on (Flag = 1<<2 | 1 =
    # 5). GT-101 good 12.5; GT-102 comm_fault (null: no Rtd, Flag B); PT-1
    # has no factor (left out); GT-103 over_range 105 (T); LV-1 maintenance
    # 3.25 (M); TT-1 stale (null, B: the device is lost, like comm_fault);
    # SW-1 bool true (1, N). DataTime is the boundary.
    "rt_2017": [
        "QN=20240501083000042;" + HDR17.format(cn="2011", flag=5) + ";CP=&&DataTime=20240501083000;"
        "a21026-Rtd=12.5,a21026-Flag=N;a21005-Flag=B;a99001-Rtd=105,a99001-Flag=T;"
        "a99002-Rtd=3.25,a99002-Flag=M;a99003-Flag=B;a99004-Rtd=1,a99004-Flag=N&&",
    ],
    # The same message, version 2025 (Flag = 2<<2 | 1 = 9), first send...
    "rt_2025": [
        "QN=20240501083000042;" + HDR17.format(cn="2011", flag=9) + ";CP=&&DataTime=20240501083000;"
        "a21026-Rtd=12.5,a21026-Flag=N;a21005-Flag=B;a99001-Rtd=105,a99001-Flag=T;"
        "a99002-Rtd=3.25,a99002-Flag=M;a99003-Flag=B;a99004-Rtd=1,a99004-Flag=N&&",
    ],
    # ...and resent: RF=1 opens the data area.
    "rt_2025_resend": [
        "QN=20240501083000042;" + HDR17.format(cn="2011", flag=9) + ";CP=&&RF=1;DataTime=20240501083000;"
        "a21026-Rtd=12.5,a21026-Flag=N;a21005-Flag=B;a99001-Rtd=105,a99001-Flag=T;"
        "a99002-Rtd=3.25,a99002-Flag=M;a99003-Flag=B;a99004-Rtd=1,a99004-Flag=N&&",
    ],
    # Minute statistics, seq 7 created 08:31:00.010, period 08:30:00; GT-102
    # had no value all minute (Count 0: only its flag).
    "minute_2017": [
        "QN=20240501083100007;" + HDR17.format(cn="2051", flag=5) + ";CP=&&DataTime=20240501083000;"
        "a21026-Avg=12.25,a21026-Min=11,a21026-Max=13.5,a21026-Flag=N;a21005-Flag=B&&",
    ],
    # Hour statistics, seq 2008 created 09:00:00.300, period 08:00:00; the
    # worst quality of GT-101 in the hour was over_range.
    "hour_2017": [
        "QN=20240501090000008;" + HDR17.format(cn="2061", flag=5) + ";CP=&&DataTime=20240501080000;"
        "a21026-Avg=20.5,a21026-Min=-0.5,a21026-Max=101,a21026-Flag=T&&",
    ],
    # Answers and requests, as the appendix writes them (ST=91 for answers).
    "qnrtn": ["QN=20160801085857223;ST=91;CN=9011;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&"],
    "exertn": ["QN=20160801085857223;ST=91;CN=9012;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&ExeRtn=1&&"],
    "dataack": ["QN=20240501083000042;ST=91;CN=9014;PW=123456;MN=MN0001;Flag=4;CP=&&&&"],
    "heartbeat_2025": ["QN=20260101000000000;ST=32;CN=9015;PW=123456;MN=MN0001;Flag=8;CP=&&&&"],
    "split_part": ["QN=20240501083000042;ST=32;CN=2011;PW=123456;MN=MN0001;Flag=7;PNUM=2;PNO=1;CP=&&DataTime=20240501083000;a21026-Rtd=1,a21026-Flag=N&&"],
    "get_time": ["QN=20240501100000123;ST=32;CN=1011;PW=123456;MN=MN0001;Flag=5;CP=&&&&"],
    "history_minute": ["QN=20240501100000124;ST=32;CN=2051;PW=123456;MN=MN0001;Flag=5;CP=&&BeginTime=20240501080000;EndTime=20240501083000&&"],
}

if __name__ == "__main__":
    for name, segs in GOLDEN.items():
        with open("golden/%s.frames" % name, "wb") as f:
            for s in segs:
                f.write(frame(s))
    print("wrote", len(GOLDEN), "files")
