package store

import (
	"testing"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/storetest"
	"github.com/stretchr/testify/require"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(*testing.T) smtp.CheckpointStore { return NewMemory() })
}

func TestMemory_ZeroValue(t *testing.T) {
	storetest.Run(t, func(*testing.T) smtp.CheckpointStore { return new(Memory) })
}

func TestDir(t *testing.T) {
	storetest.Run(t, func(t *testing.T) smtp.CheckpointStore {
		s, err := OpenDir(t.TempDir())
		require.NoError(t, err)
		return s
	})
}
