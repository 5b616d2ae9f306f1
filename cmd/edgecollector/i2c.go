package main

import (
	"errors"
	"fmt"
	"log/slog"

	"periph.io/x/conn/v3/i2c"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge"
)

// i2cOpener opens an I2C bus by the name in the config.
type i2cOpener func(name string) (i2c.BusCloser, error)

func checkI2C(b config.Bus) error {
	return fmt.Errorf("bus %q: I2C is not built in yet", b.Name)
}

// checkHardwareWith opens every serial port and I2C bus the config names.
func checkHardwareWith(cfg *config.Config, d deps) error {
	return checkHardware(cfg)
}

func i2cSource(cfg *config.Config, device string, idx []int, e *edge.Engine, d deps, log *slog.Logger) (edge.Source, error) {
	return nil, errors.New("I2C is not built in yet")
}
