// tutorial_publish.js - publish as the tutorial's own client code does
// (Node amqplib, a confirm channel): orders with sendToQueue, notifications
// with sendNotification's publish. Used by tests/integration/
// test_it_amqplib.c:
//   node tutorial_publish.js AMQP_URL ORDERS NOTIFICATIONS
// Prints one line per message ("order <messageId>", "notification
// <messageId> <priority>"), then "confirmed N" once the broker confirmed
// all; exits 1 on any error.
'use strict';
const amqp = require('amqplib');

const CHANNELS = ['email', 'sms', 'push', 'websocket'];

async function main() {
  const [url, nOrders, nNotes] = process.argv.slice(2);
  const conn = await amqp.connect(url);
  const ch = await conn.createConfirmChannel();
  let n = 0;

  for (let i = 1; i <= Number(nOrders); i++) {
    const order = {
      type: 'order.created',
      orderId: `js-order-${i}`,
      userId: `js-user-${i}`,
      items: [{productId: 'p-1', productName: 'Laptop', quantity: 1, price: 999.99}],
      totalAmount: 999.99,
      timestamp: new Date().toISOString(),
    };
    const messageId = `js-msg-order-${i}`;
    ch.sendToQueue('order.created', Buffer.from(JSON.stringify(order)), {
      persistent: true,
      messageId,
      priority: 5,
      timestamp: Date.now(),
      contentType: 'application/json',
    });
    console.log(`order ${messageId}`);
    n++;
  }
  for (let i = 1; i <= Number(nNotes); i++) {
    const type = CHANNELS[(i - 1) % CHANNELS.length];
    const priority = i % 2 ? 'high' : 'normal';
    const notification = {
      id: `js-note-${i}`,
      type,
      recipient: type === 'email' ? `user${i}@example.com` : `user-${i}`,
      message: `Hello ${i}`,
      priority,
      timestamp: new Date().toISOString(),
      attempts: 0,
      maxAttempts: 3,
    };
    const messageId = `js-msg-note-${i}`;
    ch.publish('notifications', `notification.${type}.${priority}`,
      Buffer.from(JSON.stringify(notification)), {
        persistent: true,
        priority: priority === 'high' ? 10 : 1,
        messageId,
        timestamp: Date.now(),
        contentType: 'application/json',
      });
    console.log(`notification ${messageId} ${priority === 'high' ? 10 : 1}`);
    n++;
  }
  await ch.waitForConfirms();
  console.log(`confirmed ${n}`);
  await ch.close();
  await conn.close();
}

main().catch((err) => {
  console.error(`tutorial_publish: ${err.message}`);
  process.exit(1);
});
