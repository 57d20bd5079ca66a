//! `PxeRequest`: the small summary of a DHCP request that the decision reads, built in
//! one pass over the options of a validated [`Message`] without allocating.

use std::fmt;
use std::net::Ipv4Addr;

use thiserror::Error;

use super::pxe::{
    Arch, ArchList, ClassKind, ClientNdi, ClientUuid, IpxeEncap, PxeVendor, UserClass, VendorClass,
};
use super::wire::{code, Message, ParseError};
use crate::mac::MacAddr;

/// DHCP message types (option 53).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    /// From the option 53 value.
    pub fn from_u8(v: u8) -> Option<MessageType> {
        Some(match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }
    /// The option 53 value.
    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
        }
    }
    /// Lower-case name for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Discover => "discover",
            MessageType::Offer => "offer",
            MessageType::Request => "request",
            MessageType::Decline => "decline",
            MessageType::Ack => "ack",
            MessageType::Nak => "nak",
            MessageType::Release => "release",
            MessageType::Inform => "inform",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a frame was not turned into a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The frame itself is malformed.
    #[error(transparent)]
    Wire(#[from] ParseError),
    /// No option 53, or a value that is not a client message.
    #[error("no usable DHCP message type")]
    NoMessageType,
    /// Not Ethernet (htype 1, hlen 6): we identify clients by MAC.
    #[error("hardware type {htype}/len {hlen} is not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
}

impl RequestError {
    /// Short label for the drop counter.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::Wire(ParseError::Truncated(_)) => "truncated",
            RequestError::Wire(ParseError::Oversize(_)) => "oversize",
            RequestError::Wire(ParseError::NotRequest(_)) => "not_request",
            RequestError::Wire(ParseError::BadHlen(_)) => "bad_hlen",
            RequestError::Wire(ParseError::NoCookie) => "no_cookie",
            RequestError::Wire(ParseError::OptionOverrun { .. }) => "option_overrun",
            RequestError::Wire(ParseError::TooManyOptions) => "too_many_options",
            RequestError::Wire(ParseError::BadOverload(_)) => "bad_overload",
            RequestError::NoMessageType => "no_message_type",
            RequestError::NotEthernet { .. } => "not_ethernet",
        }
    }
}

/// Everything the decision needs from one request, borrowed from the frame.
#[derive(Clone, Copy, Debug)]
pub struct PxeRequest<'a> {
    /// The validated frame (kept for echoing chaddr).
    pub msg: Message<'a>,
    /// Option 53.
    pub msg_type: MessageType,
    /// Transaction id.
    pub xid: u32,
    /// Client MAC from chaddr.
    pub mac: MacAddr,
    /// Broadcast flag (RFC 2131 §4.1).
    pub broadcast: bool,
    /// Client address field.
    pub ciaddr: Ipv4Addr,
    /// Relay agent address field.
    pub giaddr: Ipv4Addr,
    /// Hops field.
    pub hops: u8,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 57.
    pub max_msg_size: Option<u16>,
    /// Option 60 parsed (None when absent).
    pub vendor_class: Option<VendorClass>,
    /// Option 93.
    pub arches: Option<ArchList<'a>>,
    /// The architecture we act on: 93's preferred entry, else 60's `Arch:` field.
    pub arch: Option<Arch>,
    /// Option 94.
    pub ndi: Option<ClientNdi>,
    /// Option 97.
    pub uuid: Option<ClientUuid<'a>>,
    /// Option 77.
    pub user_class: Option<UserClass<'a>>,
    /// Option 175.
    pub ipxe: Option<IpxeEncap<'a>>,
    /// Option 43 from the client (boot item on 4011).
    pub pxe_vendor: Option<PxeVendor<'a>>,
    /// Option 82, echoed in replies to relays.
    pub relay_info: Option<&'a [u8]>,
    /// Option 12.
    pub hostname: Option<&'a [u8]>,
    /// Option 55.
    pub param_list: Option<&'a [u8]>,
}

fn ipv4(v: &[u8]) -> Option<Ipv4Addr> {
    match v {
        &[a, b, c, d] => Some(Ipv4Addr::new(a, b, c, d)),
        _ => None,
    }
}

impl<'a> PxeRequest<'a> {
    /// Validates a frame and summarises it.
    pub fn parse(frame: &'a [u8]) -> Result<PxeRequest<'a>, RequestError> {
        let msg = Message::new_checked(frame)?;
        PxeRequest::from_message(msg)
    }

    /// Summarises a validated message (first occurrence of each option wins).
    pub fn from_message(msg: Message<'a>) -> Result<PxeRequest<'a>, RequestError> {
        if msg.htype() != 1 || msg.hlen() != 6 {
            return Err(RequestError::NotEthernet {
                htype: msg.htype(),
                hlen: msg.hlen(),
            });
        }
        let mac = MacAddr::from_slice(msg.chaddr()).ok_or(RequestError::NotEthernet {
            htype: msg.htype(),
            hlen: msg.hlen(),
        })?;
        let mut msg_type = None;
        let mut req = PxeRequest {
            msg,
            msg_type: MessageType::Discover,
            xid: msg.xid(),
            mac,
            broadcast: msg.flags() & 0x8000 != 0,
            ciaddr: msg.ciaddr(),
            giaddr: msg.giaddr(),
            hops: msg.hops(),
            requested_ip: None,
            server_id: None,
            max_msg_size: None,
            vendor_class: None,
            arches: None,
            arch: None,
            ndi: None,
            uuid: None,
            user_class: None,
            ipxe: None,
            pxe_vendor: None,
            relay_info: None,
            hostname: None,
            param_list: None,
        };
        for (c, v) in msg.options() {
            match c {
                code::MESSAGE_TYPE if msg_type.is_none() => {
                    msg_type = v.first().copied().and_then(MessageType::from_u8)
                }
                code::REQUESTED_IP if req.requested_ip.is_none() => req.requested_ip = ipv4(v),
                code::SERVER_ID if req.server_id.is_none() => req.server_id = ipv4(v),
                code::MAX_MSG_SIZE if req.max_msg_size.is_none() => {
                    req.max_msg_size = match v {
                        &[a, b] => Some(u16::from_be_bytes([a, b])),
                        _ => None,
                    }
                }
                code::CLASS_ID if req.vendor_class.is_none() => {
                    req.vendor_class = Some(VendorClass::parse(v))
                }
                code::CLIENT_ARCH if req.arches.is_none() => req.arches = ArchList::new(v),
                code::CLIENT_NDI if req.ndi.is_none() => req.ndi = ClientNdi::parse(v),
                code::CLIENT_UUID if req.uuid.is_none() => req.uuid = ClientUuid::parse(v),
                code::USER_CLASS if req.user_class.is_none() => {
                    req.user_class = Some(UserClass::parse(v))
                }
                code::IPXE_ENCAP if req.ipxe.is_none() => req.ipxe = Some(IpxeEncap::new(v)),
                code::VENDOR if req.pxe_vendor.is_none() => {
                    req.pxe_vendor = Some(PxeVendor::new(v))
                }
                code::RELAY_AGENT if req.relay_info.is_none() => req.relay_info = Some(v),
                code::HOSTNAME if req.hostname.is_none() => req.hostname = Some(v),
                code::PARAM_LIST if req.param_list.is_none() => req.param_list = Some(v),
                _ => {}
            }
        }
        req.msg_type = match msg_type {
            Some(
                t @ (MessageType::Discover
                | MessageType::Request
                | MessageType::Decline
                | MessageType::Release
                | MessageType::Inform),
            ) => t,
            _ => return Err(RequestError::NoMessageType),
        };
        req.arch = req
            .arches
            .and_then(|l| l.preferred())
            .or(req.vendor_class.and_then(|v| v.arch));
        Ok(req)
    }

    /// What option 60 says (Other when absent).
    pub fn class_kind(&self) -> ClassKind {
        self.vendor_class.map_or(ClassKind::Other, |v| v.kind)
    }

    /// PXE or HTTP boot firmware (or iPXE, which also sends `PXEClient`).
    pub fn is_pxe(&self) -> bool {
        matches!(self.class_kind(), ClassKind::Pxe | ClassKind::Http)
    }

    /// Already running iPXE: user class `iPXE` or option 175 present.
    pub fn is_ipxe(&self) -> bool {
        self.ipxe.is_some() || self.user_class.is_some_and(|u| u.is_ipxe())
    }

    /// The client's largest acceptable DHCP message (UDP payload), RFC 2132 §9.10.
    pub fn max_reply_len(&self) -> usize {
        // Option 57 counts the IP and UDP headers; below 576 is illegal and ignored.
        const IP_UDP: usize = 28;
        const MIN_IP_DATAGRAM: usize = 576;
        let datagram = self
            .max_msg_size
            .map_or(MIN_IP_DATAGRAM, |v| usize::from(v).max(MIN_IP_DATAGRAM));
        datagram - IP_UDP
    }
}
