package main

import (
	"os"

	"github.com/mqttstore/mqttstore/demo"
	_ "github.com/mqttstore/mqttstore/providers/badger"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
	_ "github.com/mqttstore/mqttstore/providers/mem"
	_ "github.com/mqttstore/mqttstore/providers/postgres"
)

func main() { os.Exit(demo.Main(os.Args[1:])) }
