package postgres_test

import (
	"fmt"

	"github.com/mqttstore/mqttstore/providers/postgres"
)

// ParseConfig reads a URL without connecting; the Config can be adjusted (or built
// around an existing *pgxpool.Pool instead) and opened with
// persistence.OpenConnector(ctx, cfg).
func ExampleParseConfig() {
	cfg, err := postgres.ParseConfig("postgres://mqtt:secret@db.example:5433/broker?schema=site1&max_conns=16&connect_timeout=3&synchronous_commit=off")
	if err != nil {
		fmt.Println(err)
		return
	}
	cc := cfg.PoolConfig.ConnConfig
	fmt.Println("server:", cc.Host, cc.Port, cc.Database, cc.User)
	fmt.Println("schema:", cfg.Schema)
	fmt.Println("pool size:", cfg.PoolConfig.MaxConns, "connect timeout:", cc.ConnectTimeout)
	fmt.Println("synchronous_commit:", cc.RuntimeParams["synchronous_commit"])
	fmt.Println("group commit:", !cfg.NoGroupCommit)

	// Errors name the problem and never show the password.
	_, err = postgres.ParseConfig("postgres://mqtt:secret@db.example/broker?max_conns=0")
	fmt.Println(err)
	// Output:
	// server: db.example 5433 broker mqtt
	// schema: site1
	// pool size: 16 connect timeout: 3s
	// synchronous_commit: off
	// group commit: true
	// persistence: invalid config: option "max_conns": "0" is not an integer in [1, 1000]
}
