#!/usr/bin/python3
"""A real Modbus slave (pymodbus) for the driver tests.

It lays out one value of every data type in every word order, encoded here
with Python's struct module (never with the collector's own encoder), and
writes a manifest of what it holds: where each value is, how it is typed and
ordered, and the value a correct master must decode.

  pyslave.py --tcp PORT --manifest FILE [--units 1,2]
  pyslave.py --rtu DEVICE --manifest FILE [--units 1,2] [--baud 9600]
  pyslave.py --tcp PORT --plant          a plant's slave for the interlock tests:
                                         holding 0-2 = three gas detectors in 0.1 %LEL
                                         (30 = 3.0 %LEL), coils 0-3 = valves (1 = open)

Addresses are 0-based protocol addresses (zero_mode=True). Holding registers
exist only where values are laid out (a sparse block): reading across an
unused address gives exception 2, illegal data address.
"""
import argparse
import asyncio
import json
import struct
import sys

from pymodbus.datastore import (ModbusServerContext, ModbusSlaveContext,
                                ModbusSparseDataBlock, ModbusSequentialDataBlock)
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer

ORDERS32 = ["ABCD", "CDAB", "BADC", "DCBA"]


def order_bytes(b, order):
    """Bytes of a big-endian value, rearranged into wire order."""
    words = [b[i:i + 2] for i in range(0, len(b), 2)]
    if order in ("CDAB", "DCBA"):   # least significant word first
        words = words[::-1]
    if order in ("BADC", "DCBA"):   # bytes swapped within each word
        words = [w[::-1] for w in words]
    return b"".join(words)


def registers(b):
    return [b[i] << 8 | b[i + 1] for i in range(0, len(b), 2)]


def layout(unit):
    """Returns (holding dict, input dict, coils list, discrete list, manifest)."""
    k = unit  # values differ per unit, so a mixed-up unit id is caught
    hr, manifest = {}, []
    addr = 0

    def put(typ, order, data, value, bit=-1, length=0, table=hr, tname="holding"):
        nonlocal addr
        for i, r in enumerate(registers(order_bytes(data, order) if typ != "string" else data)):
            table[addr + i] = r
        manifest.append({"unit": unit, "table": tname, "address": addr, "type": typ, "order": order,
                         "bit": bit, "length": length, "value": value})
        addr += len(data) // 2

    for order in ORDERS32:
        put("int16", order, struct.pack(">h", -1234 * k), -1234 * k)
        put("uint16", order, struct.pack(">H", 54321 - k), 54321 - k)
        put("int32", order, struct.pack(">i", -12345678 * k), -12345678 * k)
        put("uint32", order, struct.pack(">I", 3000000000 + k), 3000000000 + k)
        f32 = struct.unpack(">f", struct.pack(">f", 12.345 * k))[0]
        put("float32", order, struct.pack(">f", f32), f32)
        put("int64", order, struct.pack(">q", -1234567890123 * k), -1234567890123 * k)
        put("uint64", order, struct.pack(">Q", 9007199254740993 + k), float(9007199254740993 + k))
        put("float64", order, struct.pack(">d", -98765.4321 * k), -98765.4321 * k)
        put("bcd32", order, bytes.fromhex("%08d" % (12345678 + k)), 12345678 + k)
        addr += 3  # a hole: a block read must not span it
    put("bcd16", "ABCD", bytes.fromhex("%04d" % (1234 + k)), 1234 + k)
    put("bcd16", "BADC", bytes.fromhex("%04d" % (4321 + k)), 4321 + k)
    s = ("GT-%04d " % k).encode()
    put("string", "ABCD", s, s.decode().rstrip(), length=len(s) // 2)
    sw = b"".join(s[i:i + 2][::-1] for i in range(0, len(s), 2))
    put("string", "BADC", sw, s.decode().rstrip(), length=len(s) // 2)
    # bools from bits of one register
    word = 0b1000_0000_0010_0001 | (k << 8)
    hr[addr] = word
    for bit in (0, 1, 5, 8, 9, 15):
        manifest.append({"unit": unit, "table": "holding", "address": addr, "type": "bool", "order": "ABCD",
                         "bit": bit, "length": 0, "value": bool(word >> bit & 1)})
    addr += 1

    ir = {}
    for i in range(20):
        ir[i] = 1000 * k + i
        manifest.append({"unit": unit, "table": "input", "address": i, "type": "uint16", "order": "ABCD",
                         "bit": -1, "length": 0, "value": 1000 * k + i})
    coils = [(i * k) % 3 == 0 for i in range(40)]
    disc = [(i + k) % 2 == 0 for i in range(40)]
    for i in range(40):
        manifest.append({"unit": unit, "table": "coil", "address": i, "type": "bool", "order": "ABCD",
                         "bit": -1, "length": 0, "value": coils[i]})
        manifest.append({"unit": unit, "table": "discrete", "address": i, "type": "bool", "order": "ABCD",
                         "bit": -1, "length": 0, "value": disc[i]})
    return hr, ir, coils, disc, manifest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", type=int)
    ap.add_argument("--rtu")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--units", default="1")
    ap.add_argument("--manifest")
    ap.add_argument("--plant", action="store_true")
    a = ap.parse_args()
    slaves, manifest = {}, []
    if a.plant:
        slaves[1] = ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, [30, 30, 30] + [0] * 7),
                                       co=ModbusSequentialDataBlock(0, [True] * 4),
                                       di=ModbusSequentialDataBlock(0, [False] * 4),
                                       ir=ModbusSequentialDataBlock(0, [0] * 4), zero_mode=True)
        a.manifest = None
    for u in ([] if a.plant else [int(x) for x in a.units.split(",")]):
        hr, ir, coils, disc, m = layout(u)
        manifest += m
        slaves[u] = ModbusSlaveContext(
            hr=ModbusSparseDataBlock(hr), ir=ModbusSparseDataBlock(ir),
            co=ModbusSequentialDataBlock(0, coils), di=ModbusSequentialDataBlock(0, disc),
            zero_mode=True)
    if a.manifest:
        with open(a.manifest, "w") as f:
            json.dump(manifest, f)
    context = ModbusServerContext(slaves=slaves, single=False)
    print("pyslave: serving units", sorted(slaves), flush=True)
    if a.tcp:
        asyncio.run(StartAsyncTcpServer(context, address=("127.0.0.1", a.tcp)))
    else:
        asyncio.run(StartAsyncSerialServer(context, framer=ModbusRtuFramer, port=a.rtu,
                                           baudrate=a.baud, timeout=0.005))


if __name__ == "__main__":
    sys.exit(main())
