import { createApp } from 'vue';
import { createRouter, createWebHistory } from 'vue-router';
import App from './App.vue';
import { loadMe, session } from './api';
import Alarms from './pages/Alarms.vue';
import Entities from './pages/Entities.vue';
import Login from './pages/Login.vue';
import Maintenance from './pages/Maintenance.vue';
import Platform from './pages/Platform.vue';
import Scenarios from './pages/Scenarios.vue';
import './style.css';

const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: '/alarms' },
    { path: '/login', component: Login, meta: { public: true } },
    { path: '/alarms', component: Alarms },
    { path: '/entities', component: Entities },
    { path: '/maintenance', component: Maintenance },
    { path: '/scenarios', component: Scenarios },
    { path: '/platform', component: Platform },
    { path: '/:rest(.*)', redirect: '/alarms' },
  ],
});

router.beforeEach(async (to) => {
  if (to.meta.public) return true;
  if (!session.token) return { path: '/login', query: { next: to.fullPath } };
  if (!session.me) await loadMe().catch(() => undefined);
  return session.token ? true : { path: '/login', query: { next: to.fullPath } };
});

createApp(App).use(router).mount('#app');

export { router };
