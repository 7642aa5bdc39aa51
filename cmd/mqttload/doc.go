// Command mqttload drives any MQTT 3.1.1 broker at a loopback address with N publishers
// and M subscribers and reports throughput, end-to-end latency and whether every
// message that had to arrive did arrive.
//
// It is built on github.com/eclipse/paho.mqtt.golang, a client library independent of
// this repository, so it measures our broker (cmd/demo) and its peers (Mosquitto,
// Mochi) with the same code; bench/run.sh runs the scenarios with it. At -qos 2 it
// uses a small MQTT 3.1.1 client of its own instead (mqtt311.go), because paho is not
// exactly-once across reconnects: it re-publishes a message whose PUBREC it already
// had, and delivers again a message whose PUBREL had not arrived, so the duplicates
// counted would be the client's. The tool's client keeps the QoS 2 state of both
// directions for the life of the process; it imports nothing of this repository.
// It also serves every run with -reconnect, at any QoS: paho's reconnection races
// with its own writer (eclipse-paho/paho.mqtt.golang#703). paho's clients read
// through a buffer (paho reads each fixed header a byte per read(2) otherwise).
//
// Each payload carries a run id, the publisher's index, a sequence number and the
// send time, so arrival can be matched to what was published and timed. Message g of
// a run (g = seq*N + publisher) goes to topic <prefix>/<g mod M>, and subscriber j
// subscribes to <prefix>/<j> (or to <prefix>/+ with -fanout).
//
// Verification: with -qos 1 or 2 and persistent subscribers (the default, -clean=false),
// a message is owed to its subscriber once the publisher got its PUBACK/PUBCOMP; owed
// messages that never arrive are reported as missing, and at QoS 2 a message that
// arrives twice is a duplicate. Either makes the command exit with status 1.
//
// Every run is bounded: -count messages, -duration of publishing (whichever ends
// first when both are given), waiting for stragglers at most -settle without an
// arrival, and -timeout over everything.
//
// Phases (-phase):
//   - run (default): subscribers connect and subscribe, publishers publish, the tool
//     waits for everything owed to arrive (bounded by -settle and -timeout).
//   - sessions: M persistent sessions are created with their subscriptions, then
//     disconnected (-parallel bounds concurrent connections).
//   - publish: publishers only, to sessions created earlier that are offline; what
//     was acknowledged is written to -state.
//   - drain: the subscribers of -state reconnect (without subscribing again, so lost
//     subscriptions show as missing messages) and receive their queued messages;
//     the drain time is reported.
//   - wait: connect attempts until the broker answers with a CONNACK; the time is
//     reported from -since (Unix nanoseconds, e.g. date +%s%N before starting it).
//
// -reconnect makes every client reconnect automatically and resume its persistent
// session, so a run keeps going across broker restarts (bench scenario 4).
//
// Cluster mode: -pub-addr and -sub-addr (comma-separated HOST:PORT lists, default
// -addr) put the publishers and the subscribers on other brokers, e.g. publishers on
// one node of a cluster and subscribers on another (bench/cluster.sh). Client k of a
// kind connects to address k mod n of its list (round-robin); the rest of the list,
// in order, is its failover: if that address refuses the connection it tries the
// next one, and with -reconnect a client that loses its connection reconnects to the
// address after the one it was on first (then the others, its own last), resuming its
// persistent session there, which a cluster whose nodes share the sessions allows.
// The summary counts failovers (connections made to another address than the
// client's previous one). Verification is the same: the tool matches every arrival
// to what was acknowledged, whichever nodes the clients were on.
//
// Only loopback addresses are accepted (in every list) unless -allow-remote is given.
package main
