//go:build amd64 && !purego

#include "textflag.h"

// CARRY sets dst to 1 if the low octet of src is c, else to 0.
#define CARRY(src, c, dst) MOVQ src, dst; XORQ $c, dst; NEGQ dst; SBBQ dst, dst; INCQ dst

// MASKS16 loads 16 octets from src into X3 and sets the bit masks of their
// CRs, LFs and dots in cr, lf and dot; X3 keeps the octets.
#define MASKS16(src, cr, lf, dot) \
	MOVOU src, X3; \
	MOVOU X3, X4; \
	PCMPEQB X0, X4; \
	PMOVMSKB X4, cr; \
	MOVOU X3, X5; \
	PCMPEQB X1, X5; \
	PMOVMSKB X5, lf; \
	MOVOU X3, X6; \
	PCMPEQB X2, X6; \
	PMOVMSKB X6, dot

// EXPAND8 writes at DI the 8 octets in the low half of reg, with the
// octets inserted that BX (a set of those 8) calls for: one PSHUFB with
// expandTab (R8) from the 8 octets and, in reg's high half, the same made
// CRs. DI moves past them. It uses DX and X6.
#define EXPAND8(reg) \
	MOVL BX, DX; \
	SHLL $4, DX; \
	MOVOU (R8)(DX*1), X6; \
	PSHUFB X6, reg; \
	MOVOU reg, (DI); \
	MOVBQZX 4096(R8)(BX*1), DX; \
	ADDQ DX, DI

// EXPAND32 writes the 32 octets in data at DI, each 8 expanded as in
// cinsert with the insertions in the low 32 bits of R14, two 8 at a time
// (the lanes of Y6 and Y8: octets 0-7 and 16-23, then 8-15 and 24-31).
// lfs has 0xff where data has an LF; R8 holds expandTab. DI moves past
// the output. It uses AX, BX, CX, DX, R10, Y4, Y6, Y8 and Y9.
#define EXPAND32(data, lfs) \
	VPAND Y7, lfs, Y4; \
	VPXOR data, Y4, Y4; \
	VPUNPCKLQDQ Y4, data, Y6; \
	VPUNPCKHQDQ Y4, data, Y8; \
	MOVL R14, BX; \
	SHLL $4, BX; \
	ANDL $0xff0, BX; \
	MOVL R14, DX; \
	SHRL $12, DX; \
	ANDL $0xff0, DX; \
	MOVL R14, AX; \
	SHRL $4, AX; \
	ANDL $0xff0, AX; \
	MOVL R14, R10; \
	SHRL $20, R10; \
	ANDL $0xff0, R10; \
	VMOVDQU (R8)(BX*1), X9; \
	VINSERTI128 $1, (R8)(DX*1), Y9, Y9; \
	VPSHUFB Y9, Y6, Y6; \
	VMOVDQU (R8)(AX*1), X9; \
	VINSERTI128 $1, (R8)(R10*1), Y9, Y9; \
	VPSHUFB Y9, Y8, Y8; \
	POPCNTL BX, BX; \
	POPCNTL AX, AX; \
	POPCNTL DX, DX; \
	VMOVDQU X6, (DI); \
	ADDQ BX, DI; \
	VMOVDQU X8, 8(DI); \
	ADDQ AX, DI; \
	VEXTRACTI128 $1, Y6, 16(DI); \
	ADDQ DX, DI; \
	VEXTRACTI128 $1, Y8, 24(DI); \
	POPCNTL R10, R10; \
	LEAQ 32(DI)(R10*1), DI

// MASK64 sets dst to the bit mask of the octets equal to c's in the 64
// octets of Y3 and Y5, leaving the compares in lo and hi. It uses R8.
#define MASK64(c, lo, hi, dst) \
	VPCMPEQB c, Y3, lo; \
	VPMOVMSKB lo, dst; \
	VPCMPEQB c, Y5, hi; \
	VPMOVMSKB hi, R8; \
	SHLQ $32, R8; \
	ORQ R8, dst

// SETUP starts both functions: carries saying whether the octet before the
// text (prevArg) is a CR or an LF, a mask of all ones with dotsArg, and a
// CR, an LF and a "." in every octet of X0, X1 and X2.
#define SETUP(prevArg, dotsArg, crCarry, lfCarry, mask) \
	MOVBQZX prevArg, R8; \
	CARRY(R8, 13, crCarry); \
	CARRY(R8, 10, lfCarry); \
	MOVBQZX dotsArg, mask; \
	NEGQ mask; \
	MOVOU crs<>(SB), X0; \
	MOVOU lfs<>(SB), X1; \
	MOVOU dots<>(SB), X2

// func scanBlocks(p []byte, prev byte, dots bool) int
//
// For each block of octets: bit masks of its CRs, LFs and dots (PCMPEQB,
// PMOVMSKB). With the CR mask shifted by one octet (the carry bringing in
// the previous block's last octet), the text is in canonical form where it
// equals the LF mask: every LF follows a CR and every CR precedes an LF.
// With the LF mask shifted, a dot that follows an LF starts a line. Blocks
// of 64 octets are checked at once; one with anything to report is
// scanned again 16 octets at a time, which finds the first octet.
TEXT ·scanBlocks(SB), NOSPLIT, $0-40
	MOVQ p_base+0(FP), SI
	MOVQ p_len+8(FP), CX
	ANDQ $~15, CX            // end of the 16-octet blocks (CX is reused)
	SETUP(prev+24(FP), dots+25(FP), R9, R10, R11) // carries in R9, R10
	XORQ AX, AX
	MOVQ CX, R14
	ANDQ $~63, R14           // end of the 64-octet blocks
	CMPB ·useAVX2(SB), $0
	JNE avx2

loop64:
	CMPQ AX, R14
	JAE tail16
	XORQ BX, BX              // CRs
	XORQ DX, DX              // LFs
	XORQ R12, R12            // dots
	MOVQ $0, DI
	LEAQ (SI)(AX*1), R13

block:
	MOVOU (R13)(DI*1), X3
	MOVOU X3, X4
	PCMPEQB X0, X4
	PMOVMSKB X4, R8
	MOVQ DI, CX
	SHLQ CX, R8
	ORQ R8, BX
	MOVOU X3, X5
	PCMPEQB X1, X5
	PMOVMSKB X5, R8
	SHLQ CX, R8
	ORQ R8, DX
	PCMPEQB X2, X3
	PMOVMSKB X3, R8
	SHLQ CX, R8
	ORQ R8, R12
	ADDQ $16, DI
	CMPQ DI, $64
	JB block
	JMP check64

avx2:
	VMOVDQU crs<>(SB), Y0
	VMOVDQU lfs<>(SB), Y1
	VMOVDQU dots<>(SB), Y2

avxloop:
	CMPQ AX, R14
	JAE avxend
	VMOVDQU (SI)(AX*1), Y3
	VMOVDQU 32(SI)(AX*1), Y5
	MASK64(Y0, Y4, Y4, BX)   // CRs
	MASK64(Y1, Y4, Y4, DX)   // LFs
	MASK64(Y2, Y4, Y4, R12)  // dots

	// Both loops: the masks of 64 octets, CRs in BX, LFs in DX, dots in
	// R12, are checked here.
check64:
	MOVQ BX, R8
	SHLQ $1, R8
	ORQ R9, R8
	XORQ DX, R8              // canonical where zero
	MOVQ DX, R13
	SHLQ $1, R13
	ORQ R10, R13
	ANDQ R13, R12
	ANDQ R11, R12            // dots that start a line
	ORQ R12, R8
	JNZ found64              // the 16-octet loop finds it
	SHRQ $63, BX
	MOVQ BX, R9
	SHRQ $63, DX
	MOVQ DX, R10
	ADDQ $64, AX
	CMPB ·useAVX2(SB), $0
	JNE avxloop
	JMP loop64

found64:
	CMPB ·useAVX2(SB), $0
	JE tail16

avxend:
	VZEROUPPER               // X0-X2 keep the constants

tail16:
	MOVQ p_len+8(FP), CX     // CX held shift counts
	ANDQ $~15, CX

loop16:
	CMPQ AX, CX
	JAE done
	MASKS16((SI)(AX*1), BX, DX, R12) // CRs, LFs, dots
	MOVL BX, R8
	SHLL $1, R8
	ORL R9, R8
	XORL DX, R8
	ANDL $0xffff, R8         // where CRs and LFs do not pair
	MOVL DX, R13
	SHLL $1, R13
	ORL R10, R13
	ANDL R13, R12
	ANDL R11, R12            // dots that start a line
	MOVL R8, DI
	ORL R12, DI
	JNZ found
	MOVL BX, R9
	SHRL $15, R9
	MOVL DX, R10
	SHRL $15, R10
	ADDQ $16, AX
	JMP loop16

found:
	// At the first unpaired octet i: an LF there is the octet itself, else
	// it follows a bare CR at i-1 (-1: the previous block's last octet).
	MOVL $32, BX
	BSFL R8, DI
	CMOVLEQ BX, DI
	BTL DI, DX
	JCS lfat
	DECL DI
lfat:
	BSFL R12, R13
	CMOVLEQ BX, R13          // the first dot that starts a line, or 32
	CMPL DI, R13
	CMOVLLT DI, R13
	MOVLQSX R13, R13
	ADDQ R13, AX

done:
	MOVQ AX, ret+32(FP)
	RET

// func dotCopy(dst, src []byte, prev byte, dots bool) (nd, ns, stuffed int)
//
// Copies src to dst in canonical form and, with dots, dot-stuffed, for as
// long as the block and the 16 octets after it lie in src and dst has room
// for 64 more octets. prev is the octet before src. Per block, from the
// same masks as scanBlocks: a CR goes in before each LF that does not
// follow a CR, an LF before each octet that follows a bare CR, and a "."
// before each "." that starts a line. A block with none of these is stored
// whole. In one with some but no bare CR, each 8 octets are expanded with
// PSHUFB (cinsert, aexpand). Otherwise (or without SSSE3) each stretch up
// to the next insertion is stored with one 16-octet store (it may write
// past the stretch: the next store overwrites that) and the octets
// inserted after it (cevents). With AVX2 the blocks are 64 octets, until a
// bare CR, and where more than half of the recent ones needed insertions
// every block is expanded without testing: a branch that goes either way
// at random costs more than the expansion. It returns the octets written
// to dst and taken from src, and the dots it inserted.
TEXT ·dotCopy(SB), NOSPLIT, $24-80
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	SETUP(prev+48(FP), dots+49(FP), R11, R12, R13) // carries in R11, R12
	MOVOU X0, X7
	PXOR X1, X7              // 0x07, CR xor LF, in every octet
	XORQ R9, R9              // dots inserted
	MOVQ src_len+32(FP), R8
	SUBQ $32, R8
	JLT cdone
	ADDQ SI, R8
	MOVQ R8, slim-8(SP)      // the last block start with 16 octets after the block
	MOVQ dst_len+8(FP), R8
	SUBQ $64, R8
	JLT cdone
	ADDQ DI, R8
	MOVQ R8, dlim-16(SP)     // the last output position with 64 octets of room
	CMPB ·useAVX2(SB), $0
	JE cloop
	VMOVDQU crs<>(SB), Y0
	VMOVDQU lfs<>(SB), Y1
	VMOVDQU dots<>(SB), Y2
	VPXOR Y0, Y1, Y7         // CR xor LF in every octet
	MOVQ R13, dmask-24(SP)
	XORL R13, R13            // how many of the recent blocks had insertions

	// With AVX2, 64 octets at a time until the end or a bare CR; the
	// 16-octet loop does the rest.
aloop:
	LEAQ 48(SI), R8
	CMPQ R8, slim-8(SP)
	JHI aexit                // fewer than 80 octets left in src
	LEAQ 64(DI), R8
	CMPQ R8, dlim-16(SP)
	JHI aexit                // less than 128 octets of room in dst
	VMOVDQU (SI), Y3
	VMOVDQU 32(SI), Y5
	MASK64(Y0, Y4, Y4, BX)   // CRs
	MASK64(Y1, Y10, Y11, DX) // LFs, their compares kept for aexpand
	MASK64(Y2, Y4, Y4, AX)   // dots
	MOVQ BX, R14
	SHLQ $1, R14
	ORQ R11, R14             // octets after a CR
	MOVQ DX, R10
	NOTQ R10
	ANDQ R14, R10            // octets after a bare CR
	JNZ aexit
	SHRQ $63, BX
	MOVQ BX, R11             // the next block's carries
	MOVQ DX, R8
	SHLQ $1, R8
	ORQ R12, R8              // octets after an LF: they start a line
	MOVQ DX, R12
	SHRQ $63, R12
	MOVQ R14, CX
	NOTQ CX
	ANDQ DX, CX              // LFs not after a CR: a CR before them
	ANDQ R8, AX
	ANDQ dmask-24(SP), AX    // dots that start a line: a "." before them
	MOVL R13, R10
	SHRL $4, R10
	SUBL R10, R13
	MOVQ CX, R14
	ORQ AX, R14
	SETNE R10B
	MOVBLZX R10B, R10
	SHLL $4, R10
	ADDL R10, R13            // 256 times the share of blocks with insertions
	CMPL R13, $128
	JA aexpand               // dense: expanding every block beats guessing
	TESTQ R14, R14
	JNZ aexpand
	VMOVDQU Y3, (DI)
	VMOVDQU Y5, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	JMP aloop

aexpand:
	POPCNTQ AX, AX
	ADDQ AX, R9              // dots inserted
	LEAQ ·expandTab(SB), R8
	EXPAND32(Y3, Y10)
	SHRQ $32, R14
	EXPAND32(Y5, Y11)
	ADDQ $64, SI
	JMP aloop

aexit:
	VZEROUPPER               // X0-X2 keep the constants
	MOVQ dmask-24(SP), R13

cloop:
	CMPQ SI, slim-8(SP)
	JHI cdone                // fewer than 32 octets left in src
	CMPQ DI, dlim-16(SP)
	JHI cdone                // less than 64 octets of room in dst
	MASKS16((SI), BX, DX, AX) // CRs, LFs, dots
	MOVL BX, R14
	SHLL $1, R14
	ORL R11, R14
	ANDL $0xffff, R14        // octets after a CR
	SHRL $15, BX
	MOVL BX, R11             // the next block's carry
	MOVL DX, BX
	SHLL $1, BX
	ORL R12, BX
	ANDL $0xffff, BX         // octets after an LF
	MOVL DX, R12
	SHRL $15, R12
	MOVL R14, CX
	NOTL CX
	ANDL DX, CX              // LFs not after a CR: a CR before them
	MOVL DX, R10
	NOTL R10
	ANDL R14, R10            // octets after a bare CR: an LF before them
	ORL R10, BX              // octets that start a line
	ANDL BX, AX
	ANDL R13, AX             // dots that start a line: a "." before them
	MOVL CX, R14
	ORL R10, R14
	ORL AX, R14
	JNZ cinsert
	MOVOU X3, (DI)
	ADDQ $16, SI
	ADDQ $16, DI
	JMP cloop

cinsert:
	// Without a bare CR every insertion is one octet before an LF or a
	// "." of the block, so each half block is expanded with one PSHUFB
	// (expandTab) from its 8 octets and the same 8 with LFs made CRs: an
	// octet with an insertion is taken from the second, then the first.
	TESTL R10, R10
	JNZ cevents
	CMPB ·useSSSE3(SB), $0
	JE cevents
	LEAQ ·expandTab(SB), R8
	MOVOU X3, X5
	PCMPEQB X1, X5
	PAND X7, X5
	PXOR X3, X5              // the block with its LFs made CRs
	MOVOU X3, X4
	PUNPCKLQDQ X5, X4        // octets 0-7, then the same made CRs
	PUNPCKHQDQ X5, X3        // octets 8-15, likewise
	MOVL R14, BX
	ANDL $0xff, BX
	EXPAND8(X4)
	MOVL R14, BX
	SHRL $8, BX
	EXPAND8(X3)
	MOVL AX, BX              // count the dots inserted
	ANDL $0xff, BX
	MOVBQZX 4096(R8)(BX*1), DX
	ADDQ DX, R9
	SHRL $8, AX
	MOVBQZX 4096(R8)(AX*1), DX
	ADDQ DX, R9
	SUBQ $16, R9
	ADDQ $16, SI
	JMP cloop

cevents:
	XORQ BX, BX              // the start of the stretch not yet stored
cnext:
	BSFL R14, DX             // the next insertion
	MOVOU (SI)(BX*1), X4
	MOVOU X4, (DI)
	MOVQ DX, R8
	SUBQ BX, R8
	ADDQ R8, DI
	BTL DX, R10
	JCC cnolf
	MOVB $10, (DI)
	INCQ DI
cnolf:
	BTL DX, CX
	JCC cnocr
	MOVB $13, (DI)
	INCQ DI
cnocr:
	BTL DX, AX
	JCC cnodot
	MOVB $46, (DI)
	INCQ DI
	INCQ R9
cnodot:
	MOVQ DX, BX
	MOVL R14, R8
	DECL R8
	ANDL R8, R14
	JNZ cnext
	MOVOU (SI)(BX*1), X4     // the rest of the block
	MOVOU X4, (DI)
	MOVQ $16, R8
	SUBQ BX, R8
	ADDQ R8, DI
	ADDQ $16, SI
	JMP cloop

cdone:
	SUBQ dst_base+0(FP), DI
	MOVQ DI, nd+56(FP)
	SUBQ src_base+24(FP), SI
	MOVQ SI, ns+64(FP)
	MOVQ R9, stuffed+72(FP)
	RET

// func hasAVX2() bool
//
// Reports whether the processor has AVX2 and the operating system saves
// the YMM registers (CPUID leaves 1 and 7, XCR0).
TEXT ·hasAVX2(SB), NOSPLIT, $0-1
	XORL AX, AX
	XORL CX, CX
	CPUID
	CMPL AX, $7
	JB no
	MOVL $1, AX
	XORL CX, CX
	CPUID
	ANDL $0x18800000, CX     // OSXSAVE, AVX and POPCNT
	CMPL CX, $0x18800000
	JNE no
	XORL CX, CX
	BYTE $0x0f; BYTE $0x01; BYTE $0xd0 // XGETBV
	ANDL $6, AX              // XMM and YMM state
	CMPL AX, $6
	JNE no
	MOVL $7, AX
	XORL CX, CX
	CPUID
	BTL $5, BX               // AVX2
	JCC no
	MOVB $1, ret+0(FP)
	RET
no:
	MOVB $0, ret+0(FP)
	RET

// func hasSSSE3() bool
//
// Reports whether the processor has SSSE3 (CPUID leaf 1).
TEXT ·hasSSSE3(SB), NOSPLIT, $0-1
	MOVL $1, AX
	XORL CX, CX
	CPUID
	SHRL $9, CX
	ANDL $1, CX
	MOVB CX, ret+0(FP)
	RET

DATA crs<>+0(SB)/8, $0x0d0d0d0d0d0d0d0d
DATA crs<>+8(SB)/8, $0x0d0d0d0d0d0d0d0d
DATA crs<>+16(SB)/8, $0x0d0d0d0d0d0d0d0d
DATA crs<>+24(SB)/8, $0x0d0d0d0d0d0d0d0d
GLOBL crs<>(SB), RODATA|NOPTR, $32
DATA lfs<>+0(SB)/8, $0x0a0a0a0a0a0a0a0a
DATA lfs<>+8(SB)/8, $0x0a0a0a0a0a0a0a0a
DATA lfs<>+16(SB)/8, $0x0a0a0a0a0a0a0a0a
DATA lfs<>+24(SB)/8, $0x0a0a0a0a0a0a0a0a
GLOBL lfs<>(SB), RODATA|NOPTR, $32
DATA dots<>+0(SB)/8, $0x2e2e2e2e2e2e2e2e
DATA dots<>+8(SB)/8, $0x2e2e2e2e2e2e2e2e
DATA dots<>+16(SB)/8, $0x2e2e2e2e2e2e2e2e
DATA dots<>+24(SB)/8, $0x2e2e2e2e2e2e2e2e
GLOBL dots<>(SB), RODATA|NOPTR, $32
