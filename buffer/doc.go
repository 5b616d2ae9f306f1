// Package buffer is the store-and-forward buffer: every message (readings,
// events, statistics) is kept under its seq until each uplink has it
// acknowledged, and then for the retention age.
//
// Append assigns seqs from one counter per gateway and returns only when the
// messages are written and synced ("appended"); only appended messages are
// promised to survive a kill -9 or a power cut. Each uplink keeps its own set
// of acknowledged seqs. Removing a message that some uplink has not
// acknowledged is a drop, and every drop is reported by a system
// buffer_dropped event that is itself never dropped.
//
// The buffer must never lose an appended message silently, never let badger
// fill the disk (badger dies with SIGBUS on a full disk), and never be
// recreated or emptied on a reconnect or a restart. It must not wake the
// gateway for nothing either: it runs badger's compaction itself when a level
// is over its target (compact.go) instead of badger's compactors, which wake
// every 50 ms, and gives back the pages badger maps (pageout_linux.go).
package buffer
