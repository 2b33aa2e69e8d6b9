//! A small HTTP/1.1 client for the CLI's calls to the local stack (`inlet send`,
//! `inlet local invoke|trigger`): plain `http://` on a private network only.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

pub async fn post(url: &str, headers: &[(String, String)], body: Bytes) -> anyhow::Result<Answer> {
    request("POST", url, headers, body).await
}

pub async fn request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> anyhow::Result<Answer> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("{url}: only http:// URLs (the local gateway) are supported");
    }
    let host = uri.host().ok_or_else(|| anyhow!("{url} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("cannot connect to {host}:{port}; is `make run` running?"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", format!("{host}:{port}"))
        .header("content-length", body.len());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = sender.send_request(request.body(Full::new(body))?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer { status, body })
}
