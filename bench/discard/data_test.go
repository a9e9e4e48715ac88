package discard

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"
)

func BenchmarkReadData(b *testing.B) {
	var sb bytes.Buffer
	for i := 0; sb.Len() < 16<<20; i++ {
		if i%10 == 0 {
			sb.WriteString(".")
		}
		fmt.Fprintf(&sb, "line %d of the message, some text to make it about 76 octets long..\r\n", i)
	}
	sb.WriteString(".\r\n")
	msg := sb.Bytes()
	b.SetBytes(int64(len(msg)))
	rd := bytes.NewReader(msg)
	r := bufio.NewReaderSize(rd, 256<<10)
	for b.Loop() {
		rd.Reset(msg)
		r.Reset(rd)
		if _, err := readData(r); err != nil {
			b.Fatal(err)
		}
	}
}
