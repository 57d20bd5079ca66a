# Writes the crafted seed inputs of the dhcp_parse_decide fuzz target: one selector byte
# (mode/port/policy, see src/dhcp/fuzz.rs) followed by a DHCP request frame.
# Usage: python3 fuzz/seed_corpus.py fuzz/corpus/dhcp_parse_decide
import struct, os, sys
out = sys.argv[1]
def frame(opts, flags=0, ciaddr=b'\0'*4, giaddr=b'\0'*4, mac=bytes([0x52,0x54,0,0x12,0x34,0x56]), file=b'', sname=b''):
    f = bytearray(240)
    f[0]=1; f[1]=1; f[2]=6
    f[4:8]=struct.pack('>I',0x12345678); f[10:12]=struct.pack('>H',flags)
    f[12:16]=ciaddr; f[24:28]=giaddr; f[28:34]=mac
    f[44:44+len(sname)]=sname; f[108:108+len(file)]=file
    f[236:240]=bytes([99,130,83,99])
    for c,v in opts:
        f += bytes([c,len(v)])+v
    f.append(255)
    return bytes(f)
uuid=bytes(range(17)); ipxe175=bytes([177,5,1,0x1a,0xf4,0x10,0,19,1,1,17,1,1,235,3,1,21,1])
vec = {
 'bios_ipxe': frame([(53,b'\x01'),(57,b'\x05\xc0'),(93,b'\0\0'),(94,b'\x01\x02\x01'),(60,b'PXEClient:Arch:00000:UNDI:002001'),(77,b'iPXE'),(175,ipxe175),(97,uuid)]),
 'uefi_ipxe': frame([(53,b'\x01'),(93,b'\0\x07'),(94,b'\x01\x03\x0a'),(60,b'PXEClient:Arch:00007:UNDI:003010'),(77,b'iPXE'),(175,ipxe175),(97,uuid)]),
 'ovmf': frame([(53,b'\x01'),(57,b'\x05\xdc'),(97,uuid),(94,b'\x01\x03\x10'),(93,b'\0\x07'),(60,b'PXEClient:Arch:00007:UNDI:003016')],flags=0x8000),
 'ovmf_4011': frame([(53,b'\x03'),(54,bytes([10,77,0,1])),(93,b'\0\x07'),(60,b'PXEClient:Arch:00007:UNDI:003016'),(43,bytes([71,4,0x80,0,0,0,255]))],ciaddr=bytes([10,77,0,50])),
 'http16': frame([(53,b'\x01'),(93,b'\0\x10'),(60,b'HTTPClient:Arch:00016:UNDI:003001')]),
 'arm64': frame([(53,b'\x01'),(93,b'\0\x0b'),(60,b'PXEClient:Arch:00011:UNDI:003000')]),
 'relay': frame([(53,b'\x01'),(93,b'\0\0'),(60,b'PXEClient'),(82,b'\x01\x04eth1\x02\x02\xab\xcd')],giaddr=bytes([10,88,0,1])),
 'overload': frame([(53,b'\x01'),(52,b'\x03')],file=bytes([60,9])+b'PXEClient'+b'\xff',sname=bytes([93,2,0,11,255])),
 'udhcpc_req': frame([(53,b'\x03'),(50,bytes([10,77,0,100])),(54,bytes([10,77,0,1])),(60,b'udhcp 1.35.0'),(12,b'host')]),
 'renew': frame([(53,b'\x03'),(60,b'udhcp')],ciaddr=bytes([10,77,0,100])),
 'release': frame([(53,b'\x07')],ciaddr=bytes([10,77,0,100])),
 'decline': frame([(53,b'\x04'),(50,bytes([10,77,0,100]))]),
 'inform': frame([(53,b'\x08')],ciaddr=bytes([10,77,0,100])),
}
os.makedirs(out, exist_ok=True)
for name, f in vec.items():
    for sel in (0x00, 0x01, 0x80, 0x55):
        open(os.path.join(out, f'{name}_{sel:02x}'), 'wb').write(bytes([sel]) + f)
