//! Chat rooms and conversations read by their members only (seeds 000, 002, 003): queries,
//! relations, writes and subscriptions; invitations, direct chats, read receipts and unread
//! counts; conversations closed and reopened.

use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::harness::TestApp;
use crate::subscriptions::{acked, recv, send};

fn code(r: &Json) -> &str {
    r["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

const ROOM: &str = "query($id: ID!) { chatRoom(id: $id) { id name messages { totalCount } members { totalCount } } }";
const ROOMS: &str =
    "{ chatRooms { totalCount } chatMessages { totalCount } chatRoomMembers { totalCount } }";
const SEND: &str = "mutation($r: ID!, $c: String!) { createChatMessage(input: {roomId: $r, body: $c}) { id editedAt } }";
const UNREAD: &str =
    "query($id: ID!) { chatRoom(id: $id) { unreadCount messageCount lastMessageAt } }";

#[tokio::test]
async fn a_private_room_is_read_and_written_by_its_members_only() {
    let app = TestApp::new().await;
    let (_, member) = app.new_user("member").await;
    let (_, outsider) = app.new_user("outsider").await;
    let member_id = app.ok(&member, "{ me { id } }", json!({})).await["me"]["id"].clone();
    let room = app
        .ok(
            &app.a.user,
            "mutation { createChatRoom(input: {name: \"Secret\", slug: \"secret\", isPrivate: true}) { id members { totalCount } } }",
            json!({}),
        )
        .await["createChatRoom"]
        .clone();
    // The creator owns it without a membership row.
    assert_eq!(room["members"]["totalCount"], 0, "{room}");
    let id = room["id"].as_str().unwrap_or_default().to_string();
    app.ok(&app.a.user, SEND, json!({ "r": id, "c": "hello" }))
        .await;

    // Not a member (an admin neither): the room, its messages and members look missing.
    for token in [&member, &outsider, &app.a.admin] {
        let r = app.gql(token, ROOM, json!({ "id": id })).await;
        assert!(r["data"]["chatRoom"].is_null(), "{r}");
        let all = app.ok(token, ROOMS, json!({})).await;
        assert_eq!(all["chatRooms"]["totalCount"], 0, "{all}");
        assert_eq!(all["chatMessages"]["totalCount"], 0);
        assert_eq!(all["chatRoomMembers"]["totalCount"], 0);
        let write = app
            .gql(token, SEND, json!({ "r": id, "c": "let me in" }))
            .await;
        assert_eq!(code(&write), "BAD_USER_INPUT", "{write}");
        let join = app
            .gql(
                token,
                "mutation($r: ID!) { createChatRoomMember(input: {roomId: $r}) { id } }",
                json!({ "r": id }),
            )
            .await;
        assert_eq!(code(&join), "BAD_USER_INPUT", "{join}");
        let filtered = app
            .ok(
                token,
                "{ chatMessages(where: {room: {name: {equals: \"Secret\"}}}) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(filtered["chatMessages"]["totalCount"], 0);
    }
    let denied = app
        .gql(
            &outsider,
            "mutation($r: ID!, $u: ID!) { inviteToChatRoom(roomId: $r, userId: $u) { id } }",
            json!({ "r": id, "u": member_id }),
        )
        .await;
    assert_eq!(code(&denied), "NOT_FOUND", "{denied}");

    // Invited by the owner, the member reads it, sees it unread, and hears new messages;
    // the outsider hears nothing.
    app.ok(
        &app.a.user,
        "mutation($r: ID!, $u: ID!) { inviteToChatRoom(roomId: $r, userId: $u) { role } }",
        json!({ "r": id, "u": member_id }),
    )
    .await;
    let seen = app.ok(&member, ROOM, json!({ "id": id })).await;
    assert_eq!(seen["chatRoom"]["messages"]["totalCount"], 1, "{seen}");
    assert_eq!(seen["chatRoom"]["members"]["totalCount"], 1);
    let unread = app.ok(&member, UNREAD, json!({ "id": id })).await;
    assert_eq!(unread["chatRoom"]["unreadCount"], 1, "{unread}");
    assert_eq!(unread["chatRoom"]["messageCount"], 1);
    assert!(unread["chatRoom"]["lastMessageAt"].is_string());
    app.ok(
        &member,
        "mutation($r: ID!) { markChatRoomRead(roomId: $r) { lastReadAt } }",
        json!({ "r": id }),
    )
    .await;
    assert_eq!(
        app.ok(&member, UNREAD, json!({ "id": id })).await["chatRoom"]["unreadCount"],
        0
    );

    let addr = app.listen().await;
    let watch = "subscription { chatMessageChanged { op node { body editedAt } } }";
    let mut inside = acked(addr, &member).await;
    send(
        &mut inside,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": watch } }),
    )
    .await;
    let mut outside = acked(addr, &outsider).await;
    send(
        &mut outside,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": watch } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = app
        .ok(&app.a.user, SEND, json!({ "r": id, "c": "for members" }))
        .await;
    let event = recv(&mut inside, Duration::from_secs(10))
        .await
        .expect("an event");
    assert_eq!(
        event["payload"]["data"]["chatMessageChanged"]["node"]["body"], "for members",
        "{event}"
    );
    assert!(
        recv(&mut outside, Duration::from_millis(700))
            .await
            .is_none(),
        "a non-member hears nothing"
    );
    assert_eq!(
        app.ok(&member, UNREAD, json!({ "id": id })).await["chatRoom"]["unreadCount"],
        1
    );

    // Own messages only are edited, and stamped.
    let mid = sent["createChatMessage"]["id"].clone();
    let edit = "mutation($m: ID!) { updateChatMessage(id: $m, input: {body: \"edited\"}) { body editedAt } }";
    let not_mine = app.gql(&member, edit, json!({ "m": mid })).await;
    assert!(not_mine.get("errors").is_some(), "{not_mine}");
    let edited = app.ok(&app.a.user, edit, json!({ "m": mid })).await;
    assert!(
        edited["updateChatMessage"]["editedAt"].is_string(),
        "{edited}"
    );
    // The change event carries the row as the hook stamped it.
    let event = recv(&mut inside, Duration::from_secs(10))
        .await
        .expect("the edit's event");
    let node = &event["payload"]["data"]["chatMessageChanged"]["node"];
    assert_eq!(node["body"], "edited", "{event}");
    assert_eq!(
        node["editedAt"], edited["updateChatMessage"]["editedAt"],
        "{event}"
    );
}

#[tokio::test]
async fn public_rooms_take_members_and_direct_chats_stay_private() {
    let app = TestApp::new().await;
    let (other_id, other) = app.new_user("other").await;
    let (_, third) = app.new_user("third").await;
    let room = app
        .ok(
            &app.a.user,
            "mutation { createChatRoom(input: {name: \"Lobby\", slug: \"lobby\"}) { id } }",
            json!({}),
        )
        .await["createChatRoom"]["id"]
        .clone();
    // Anyone reads and writes in a public room; a member gets an unread count; leaving is
    // deleting one's membership.
    assert_eq!(
        app.ok(&third, ROOMS, json!({})).await["chatRooms"]["totalCount"],
        1
    );
    app.ok(&third, SEND, json!({ "r": room, "c": "passing by" }))
        .await;
    let unread = |token: String| {
        let app = &app;
        let room = room.clone();
        async move {
            app.ok(&token, UNREAD, json!({ "id": room })).await["chatRoom"]["unreadCount"].clone()
        }
    };
    assert_eq!(unread(third.clone()).await, 0);
    let joined = app
        .ok(
            &third,
            "mutation($r: ID!) { createChatRoomMember(input: {roomId: $r}) { id role } }",
            json!({ "r": room }),
        )
        .await;
    app.ok(&app.a.user, SEND, json!({ "r": room, "c": "welcome" }))
        .await;
    assert_eq!(unread(third.clone()).await, 1);
    app.ok(
        &third,
        "mutation($m: ID!) { deleteChatRoomMember(id: $m) { id } }",
        json!({ "m": joined["createChatRoomMember"]["id"] }),
    )
    .await;
    assert_eq!(unread(third.clone()).await, 0);

    // A direct chat: one room per pair, private to the two.
    let open = "mutation($u: ID!) { openDirectChat(userId: $u) { id kind isPrivate } }";
    let first = app.ok(&app.a.user, open, json!({ "u": other_id })).await;
    assert_eq!(first["openDirectChat"]["kind"], "DIRECT");
    assert_eq!(first["openDirectChat"]["isPrivate"], true);
    let again = app.ok(&other, open, json!({ "u": app.a.user_id })).await;
    assert_eq!(again["openDirectChat"]["id"], first["openDirectChat"]["id"]);
    let dm = first["openDirectChat"]["id"].clone();
    app.ok(&other, SEND, json!({ "r": dm, "c": "just us" }))
        .await;
    let peek = app.gql(&third, ROOM, json!({ "id": dm })).await;
    assert!(peek["data"]["chatRoom"].is_null(), "{peek}");
    let public_dm = app
        .gql(
            &app.a.user,
            "mutation { createChatRoom(input: {name: \"x\", slug: \"x\", kind: DIRECT}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&public_dm), "BAD_USER_INPUT", "{public_dm}");
}

#[tokio::test]
async fn conversations_are_read_by_their_participants_and_close() {
    let app = TestApp::new().await;
    let (helper_id, helper) = app.new_user("helper").await;
    let (_, stranger) = app.new_user("stranger").await;
    let c = app
        .ok(
            &app.a.user,
            "mutation { createConversation(input: {channel: \"web\", participant: {name: \"Ann\"}}) { id status participants { totalCount } } }",
            json!({}),
        )
        .await["createConversation"]
        .clone();
    assert_eq!(c["participants"]["totalCount"], 1, "{c}");
    let id = c["id"].clone();
    let read = "query($id: ID!) { conversation(id: $id) { id status messages { totalCount } } }";
    for token in [&helper, &stranger, &app.a.admin] {
        assert!(app.gql(token, read, json!({ "id": id })).await["data"]["conversation"].is_null());
    }
    let add = "mutation($c: ID!, $u: ID!) { addConversationParticipant(conversationId: $c, userId: $u) { id } }";
    assert_eq!(
        code(
            &app.gql(&stranger, add, json!({ "c": id, "u": helper_id }))
                .await
        ),
        "NOT_FOUND"
    );
    app.ok(&app.a.user, add, json!({ "c": id, "u": helper_id }))
        .await;
    assert!(!app.ok(&helper, read, json!({ "id": id })).await["conversation"].is_null());
    assert!(app.gql(&stranger, read, json!({ "id": id })).await["data"]["conversation"].is_null());

    let message = "mutation($c: ID!) { createConversationMessage(input: {conversationId: $c, role: \"agent\", content: \"hi\"}) { id } }";
    app.ok(&helper, message, json!({ "c": id })).await;
    let closed = app
        .ok(
            &helper,
            "mutation($id: ID!) { closeConversation(id: $id) { status closedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(closed["closeConversation"]["status"], "CLOSED");
    assert!(closed["closeConversation"]["closedAt"].is_string());
    assert_eq!(
        code(&app.gql(&helper, message, json!({ "c": id })).await),
        "CONFLICT"
    );
    assert_eq!(
        code(
            &app.gql(
                &stranger,
                "mutation($id: ID!) { reopenConversation(id: $id) { status } }",
                json!({ "id": id })
            )
            .await
        ),
        "NOT_FOUND"
    );
    let reopened = app
        .ok(
            &app.a.user,
            "mutation($id: ID!) { reopenConversation(id: $id) { status closedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(reopened["reopenConversation"]["status"], "ACTIVE");
    assert!(reopened["reopenConversation"]["closedAt"].is_null());
    app.ok(&helper, message, json!({ "c": id })).await;
    assert_eq!(
        app.ok(&helper, read, json!({ "id": id })).await["conversation"]["messages"]["totalCount"],
        2
    );
}
