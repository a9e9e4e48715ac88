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
	VPCMPEQB Y0, Y3, Y4
	VPMOVMSKB Y4, BX
	VPCMPEQB Y0, Y5, Y4
	VPMOVMSKB Y4, R8
	SHLQ $32, R8
	ORQ R8, BX               // CRs
	VPCMPEQB Y1, Y3, Y4
	VPMOVMSKB Y4, DX
	VPCMPEQB Y1, Y5, Y4
	VPMOVMSKB Y4, R8
	SHLQ $32, R8
	ORQ R8, DX               // LFs
	VPCMPEQB Y2, Y3, Y4
	VPMOVMSKB Y4, R12
	VPCMPEQB Y2, Y5, Y4
	VPMOVMSKB Y4, R8
	SHLQ $32, R8
	ORQ R8, R12              // dots

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
// Copies src to dst 16 octets at a time, in canonical form and, with dots,
// dot-stuffed, for as long as the block and the 16 octets after it lie in
// src and dst has room for 64 more octets. prev is the octet before src.
// Per block, from the same masks as scanBlocks: a CR goes in before each
// LF that does not follow a CR, an LF before each octet that follows a
// bare CR, and a "." before each "." that starts a line. A block with none
// of these is stored whole; in one with some, each stretch up to the next
// insertion is stored with one 16-octet store (it may write past the
// stretch: the next store overwrites that) and the octets inserted after
// it. It returns the octets written to dst and taken from src, and the
// dots it inserted.
TEXT ·dotCopy(SB), NOSPLIT, $0-80
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	SETUP(prev+48(FP), dots+49(FP), R11, R12, R13) // carries in R11, R12
	XORQ R9, R9              // dots inserted

cloop:
	MOVQ src_base+24(FP), R8
	ADDQ src_len+32(FP), R8
	SUBQ $32, R8
	CMPQ SI, R8
	JHI cdone                // fewer than 32 octets left in src
	MOVQ dst_base+0(FP), R8
	ADDQ dst_len+8(FP), R8
	SUBQ $64, R8
	CMPQ DI, R8
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
	JNZ cevents
	MOVOU X3, (DI)
	ADDQ $16, SI
	ADDQ $16, DI
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
	ANDL $0x18000000, CX     // OSXSAVE and AVX
	CMPL CX, $0x18000000
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
