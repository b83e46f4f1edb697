//! A whole BGP message: header and body (RFC 4271 section 4).

use super::error::{EmitError, Error};
use super::header::{Header, MessageType};
use super::notification::NotificationRepr;
use super::open::{OpenPacket, OpenRepr};
use super::route_refresh::RouteRefreshRepr;
use super::update::{ParsedUpdate, UpdatePacket, UpdateRepr};
use super::{Context, HEADER_LEN};

/// One BGP message.
// UPDATE is much larger than the other variants; messages are transient
// (decoded, consumed, dropped), so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(OpenRepr),
    /// UPDATE with its RFC 7606 outcome. When emitting, only
    /// `ParsedUpdate::update` is used; build one with `UpdateRepr::into()`.
    Update(ParsedUpdate),
    /// NOTIFICATION.
    Notification(NotificationRepr),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefreshRepr),
}

impl From<UpdateRepr> for ParsedUpdate {
    fn from(update: UpdateRepr) -> ParsedUpdate {
        ParsedUpdate {
            update,
            treat_as_withdraw: None,
            discarded: Vec::new(),
        }
    }
}

impl Message {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Parses the message at the start of `buf`, which must hold it whole
    /// ([`Header::frame_len`] says how long it is); bytes after it are
    /// ignored. `Err` is the NOTIFICATION to send before closing.
    pub fn parse(buf: &[u8], ctx: &Context) -> Result<Message, Error> {
        let Some(header) = Header::new_checked(buf) else {
            return Err(Error::BadMessageLength(buf.len() as u16));
        };
        header.check(ctx)?;
        let len = usize::from(header.length());
        let Some(body) = buf.get(HEADER_LEN..len) else {
            return Err(Error::BadMessageLength(header.length()));
        };
        Ok(match header.message_type() {
            MessageType::Open => Message::Open(OpenRepr::parse(&OpenPacket::new_unchecked(body))?),
            MessageType::Update => {
                Message::Update(UpdateRepr::parse(&UpdatePacket::new_unchecked(body), ctx)?)
            }
            MessageType::Notification => Message::Notification(
                NotificationRepr::parse(body).ok_or(Error::BadMessageLength(header.length()))?,
            ),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => Message::RouteRefresh(
                RouteRefreshRepr::parse(body)
                    .ok_or_else(|| Error::RouteRefreshLength(buf[..len].to_vec()))?,
            ),
            MessageType::Unknown(t) => return Err(Error::BadMessageType(t)),
        })
    }

    fn body_len(&self, ctx: &Context) -> usize {
        match self {
            Message::Open(o) => o.buffer_len(),
            Message::Update(u) => u.update.buffer_len(ctx),
            Message::Notification(n) => n.buffer_len(),
            Message::Keepalive => 0,
            Message::RouteRefresh(_) => RouteRefreshRepr::BUFFER_LEN,
        }
    }

    /// Length of the whole message.
    pub fn buffer_len(&self, ctx: &Context) -> usize {
        HEADER_LEN + self.body_len(ctx)
    }

    /// Emits the whole message. Panics if `buf` is shorter than
    /// `buffer_len()`; the caller also checks the length against
    /// [`Context::max_message_len`] (or uses [`Message::to_bytes`]).
    pub fn emit(&self, buf: &mut [u8], ctx: &Context) {
        let len = self.buffer_len(ctx);
        let mut header = Header::new_unchecked(&mut buf[..HEADER_LEN]);
        header.set_marker();
        header.set_length(len.min(usize::from(u16::MAX)) as u16);
        header.set_message_type(self.message_type());
        let body = &mut buf[HEADER_LEN..len];
        match self {
            Message::Open(o) => o.emit(body),
            Message::Update(u) => u.update.emit(body, ctx),
            Message::Notification(n) => n.emit(body),
            Message::Keepalive => {}
            Message::RouteRefresh(r) => r.emit(body),
        }
    }

    /// The encoded message, or an error if it is longer than the context
    /// allows for its type (a NOTIFICATION's data is cut to fit instead).
    pub fn to_bytes(&self, ctx: &Context) -> Result<Vec<u8>, EmitError> {
        let len = self.buffer_len(ctx);
        let max = ctx.max_message_len(self.message_type());
        if let Message::Notification(n) = self {
            if len > max {
                // The data quotes what was wrong (a whole ROUTE-REFRESH,
                // RFC 7313 section 5); cut it rather than close without a
                // NOTIFICATION (RFC 8654 section 5 allows truncating).
                let mut cut = n.clone();
                cut.data.truncate(n.data.len() - (len - max));
                return Message::Notification(cut).to_bytes(ctx);
            }
        }
        if len > max {
            return Err(EmitError::TooLong { len, max });
        }
        let mut buf = vec![0; len];
        self.emit(&mut buf, ctx);
        Ok(buf)
    }
}
